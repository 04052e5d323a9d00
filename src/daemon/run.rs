//! Daemon mode: start the threads, hand the state to the owner, route messages
//! until a shutdown is asked for.

use std::path::Path;
use std::time::Duration;

use crossbeam_channel::{bounded, select, unbounded};

use super::args::Options;
use super::logging::{self, Sink};
use super::owner::{Env, MapOps, Outputs, Owner};
use super::pidfile::{DEFAULT_PIDFILE, PidFile};
use super::signals::{self, SignalEvent};
use crate::checkers::{self, MonotonicClock};
use crate::cli::server::{self, ServerConfig};
use crate::config::keywords::Setting;
use crate::config::{self, LoadOptions};
use crate::marginal::thread::IoErrStat;
use crate::uevent;

/// Threads kept for blocking SG_IO checks (tur, readsector0); more start while checks hang.
const CHECKER_WORKERS: usize = 4;
/// Upper bound of uevents merged in one pass, so other inputs are still served in a storm.
const UEVENT_BATCH: usize = 4096;

fn notify(state: &[sd_notify::NotifyState]) {
    // Outside systemd there is no NOTIFY_SOCKET; that is not an error.
    let _ = sd_notify::notify(state);
}

fn uxsock_timeout(cfg: &config::Config) -> Duration {
    Duration::from_millis(cfg.setting_int(Setting::UxsockTimeout).filter(|n| *n > 0).map_or(4000, |n| n as u64))
}

fn verbosity(cfg: &config::Config, opts: &Options) -> u8 {
    opts.verbosity.unwrap_or_else(|| cfg.setting_int(Setting::Verbosity).map_or(2, |n| n.clamp(0, 6) as u8))
}

/// Runs the daemon until SIGTERM/SIGINT or `shutdown`; returns the exit code.
pub fn run(opts: &Options, load: &LoadOptions, dm: impl FnOnce() -> Result<Box<dyn MapOps>, String>) -> i32 {
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
    let sink = if opts.foreground { Sink::Stderr { timestamps: !opts.no_timestamps } } else { Sink::Syslog };
    let logger = logging::init(sink, verbosity(&cfg, opts));
    for d in &loaded.diagnostics {
        match d.level {
            config::Level::Error => log::error!("{d}"),
            config::Level::Warning => log::warn!("{d}"),
            config::Level::Notice => log::debug!("{d}"),
        }
    }
    let code = run_threads(opts, cfg, dm);
    logger.shutdown();
    code
}

/// The open-file limit `max_fds` asks for: a number, or `max` (also the default) for
/// the kernel's ceiling, `/proc/sys/fs/nr_open`.
fn wanted_fds(cfg: &config::Config) -> u64 {
    match cfg.setting_int(Setting::MaxFds) {
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
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else { return };
    if soft >= want {
        return;
    }
    // Raising the hard limit needs CAP_SYS_RESOURCE; without it go as far as it allows.
    let result = setrlimit(Resource::RLIMIT_NOFILE, want, hard.max(want))
        .or_else(|_| setrlimit(Resource::RLIMIT_NOFILE, want.min(hard), hard));
    match (result, getrlimit(Resource::RLIMIT_NOFILE)) {
        (Ok(()), Ok((now, _))) => log::info!("open file limit raised from {soft} to {now}"),
        (Err(e), _) | (Ok(()), Err(e)) => log::warn!("cannot raise the open file limit from {soft} to {want}: {e}"),
    }
}

fn run_threads(opts: &Options, cfg: config::Config, dm: impl FnOnce() -> Result<Box<dyn MapOps>, String>) -> i32 {
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
    if let Err(e) = signals::spawn(sig_tx) {
        log::error!("cannot install signal handlers: {e}");
        return 1;
    }
    let (uev_tx, uev_rx) = unbounded();
    // udevd re-broadcasts processed events (with ID_SERIAL etc.); without udevd only
    // the kernel's own events exist.
    let group = if Path::new("/run/udev/control").exists() {
        uevent::UEVENT_GROUP_UDEV
    } else {
        uevent::UEVENT_GROUP_KERNEL
    };
    let uevents = match uevent::spawn_reader(group, uev_tx) {
        Ok(h) => Some(h),
        Err(e) => {
            log::error!("cannot listen for uevents: {e}");
            None
        }
    };
    let (chk_tx, chk_ctl) = unbounded();
    let (res_tx, res_rx) = unbounded();
    let checker = match checkers::spawn_checker_loop(chk_ctl, res_tx, MonotonicClock, CHECKER_WORKERS) {
        Ok(h) => h,
        Err(e) => {
            log::error!("cannot start the checker thread: {e}");
            return 1;
        }
    };
    let (ioerr_tx, ioerr_rx) = unbounded();
    let timeout = uxsock_timeout(&cfg);
    let mut owner = Owner::new(
        cfg,
        Env { bindings_read_only: opts.bindings_read_only, ..Env::default() },
        dm,
        Outputs { checker: chk_tx, ioerr: IoErrStat::new(ioerr_tx) },
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
    let server = match server::spawn(listeners, ServerConfig { uxsock_timeout: timeout, ..ServerConfig::default() }, req_tx) {
        Ok(s) => s,
        Err(e) => {
            log::error!("cannot start the CLI listener: {e}");
            return 1;
        }
    };
    notify(&[sd_notify::NotifyState::Ready, sd_notify::NotifyState::Status("up")]);

    let ticker = crossbeam_channel::tick(Duration::from_secs(1));
    loop {
        select! {
            recv(ticker) -> _ => owner.tick(),
            recv(sig_rx) -> s => match s {
                Ok(SignalEvent::Shutdown) | Err(_) => break,
                Ok(SignalEvent::Reconfigure) => reconfigure(&mut owner),
                Ok(SignalEvent::ReopenLog) => log::info!("reopening the log"),
            },
            recv(uev_rx) -> ev => if let Ok(ev) = ev {
                // Take whatever else is queued: merging needs the whole burst.
                let mut batch = vec![ev];
                batch.extend(uev_rx.try_iter().take(UEVENT_BATCH - 1));
                owner.on_uevents(batch);
            },
            recv(res_rx) -> r => if let Ok(r) = r { owner.on_check(r) },
            recv(ioerr_rx) -> e => if let Ok(e) = e { owner.on_ioerr(e) },
            recv(req_rx) -> req => {
                let Ok(req) = req else { break };
                match req.cmd {
                    crate::cli::parse::Command::Shutdown => {
                        let _ = req.reply.send(String::new());
                        break;
                    }
                    crate::cli::parse::Command::Reconfigure { .. } => {
                        reconfigure(&mut owner);
                        let _ = req.reply.send(String::new());
                    }
                    cmd => {
                        let reply = owner.on_command(cmd).unwrap_or_else(|e| e.reply().to_string());
                        // The server may have timed the client out already.
                        let _ = req.reply.send(reply);
                    }
                }
            }
        }
    }
    log::info!("multipathd: shut down");
    notify(&[sd_notify::NotifyState::Stopping]);
    owner.shutdown();
    server.stop();
    if let Some(u) = uevents {
        u.stop();
    }
    let _ = checker.join();
    0
}

fn reconfigure(owner: &mut Owner) {
    notify(&[sd_notify::NotifyState::Reloading]);
    match config::load(&LoadOptions::default()) {
        Ok(l) => {
            log::info!("reconfigure: new configuration loaded");
            owner.reconfigure(l.config);
        }
        Err(e) => log::error!("reconfigure failed, keeping the old configuration: {e}"),
    }
    notify(&[sd_notify::NotifyState::Ready]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_fds_number_or_the_kernel_ceiling() {
        let parse = |text: &str| config::parse_str("multipath.conf", text).expect("parses").config;
        assert_eq!(wanted_fds(&parse("defaults {\n max_fds 8192\n}\n")), 8192);
        let nr_open: u64 = std::fs::read_to_string("/proc/sys/fs/nr_open").unwrap().trim().parse().unwrap();
        assert_eq!(wanted_fds(&parse("defaults {\n max_fds max\n}\n")), nr_open);
        assert_eq!(wanted_fds(&parse("")), nr_open);
    }
}
