//! The daemon's main loop (`run::serve`) when a worker thread ends: each test drops
//! one sender, as the thread's end would, and checks that the loop neither spins on
//! the closed channel nor keeps running without a worker it cannot do without.

mod common;

use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, bounded, unbounded};
use multipathd::checkers::{CheckOutcome, Control};
use multipathd::cli::format::DaemonState;
use multipathd::cli::server::Request;
use multipathd::config::parse_str;
use multipathd::daemon::owner::{Env, ExistingMap, Load, MapOps, NewMap, Outputs, Owner, PartitionMap};
use multipathd::daemon::reload::Reloader;
use multipathd::daemon::run::{Inbox, WorkerDied, serve};
use multipathd::daemon::signals::SignalEvent;
use multipathd::dm::{DmError, MapUdev, Suspend};
use multipathd::marginal::thread::{IoErrEvent, IoErrStat};
use multipathd::uevent::Uevent;
use nix::time::{ClockId, clock_gettime};

use common::FakeSys;
use common::dm::gone;

/// A kernel without multipath maps: the loop tests need no device-mapper.
struct NoMaps;

impl MapOps for NoMaps {
    fn list_maps(&mut self) -> Result<Vec<ExistingMap>, DmError> {
        Ok(Vec::new())
    }
    fn create_map(&mut self, m: &NewMap) -> Result<(u32, Load), DmError> {
        Err(gone("create", &m.name))
    }
    fn reload_map(&mut self, name: &str, _: u64, _: &str, _: MapUdev, _: Suspend) -> Result<Load, DmError> {
        Err(gone("message", name))
    }
    fn message(&mut self, name: &str, _: &str) -> Result<(), DmError> {
        Err(gone("message", name))
    }
    fn status(&mut self, name: &str) -> Result<String, DmError> {
        Err(gone("message", name))
    }
    fn remove_map(&mut self, name: &str, _: bool) -> Result<(), DmError> {
        Err(gone("remove", name))
    }
    fn open_count(&mut self, name: &str) -> Result<i32, DmError> {
        Err(gone("info", name))
    }
    fn partition_maps(&mut self, name: &str) -> Result<Vec<PartitionMap>, DmError> {
        Err(gone("list", name))
    }
    fn suspend(&mut self, name: &str, _: Suspend) -> Result<(), DmError> {
        Err(gone("message", name))
    }
    fn resume(&mut self, name: &str, _: MapUdev) -> Result<(), DmError> {
        Err(gone("message", name))
    }
}

/// The sending ends, as the worker threads hold them.
struct Workers {
    signals: Sender<SignalEvent>,
    uevents: Sender<Uevent>,
    dm_events: Sender<Vec<String>>,
    checks: Sender<CheckOutcome>,
    ioerr: Sender<IoErrEvent>,
    requests: Sender<Request>,
}

/// What the loop's thread reports when `serve` returns.
struct Ended {
    result: Result<(), WorkerDied>,
    state: DaemonState,
    /// CPU time the loop's thread used: a loop spinning on a closed channel burns
    /// all of the wall time it runs.
    cpu: Duration,
}

struct Loop {
    checker: Receiver<Control>,
    thread: JoinHandle<Ended>,
    _sys: FakeSys,
}

fn start() -> (Workers, Loop) {
    let sys = FakeSys::new();
    let env = Env {
        sysfs: sys.root(),
        udev_dir: sys.udev(),
        dev_dir: sys.dev(),
        state_dir: sys.state(),
        ..Env::default()
    };
    let (chk_tx, checker) = unbounded();
    let (owner_ioerr_tx, _) = unbounded();
    let cfg = parse_str("multipath.conf", "").expect("empty config parses").config;
    let (reload, reloads_rx) = Reloader::new();
    let out = Outputs {
        checker: chk_tx,
        ioerr: IoErrStat::new(owner_ioerr_tx),
        reload,
    };
    let mut owner = Owner::new(cfg, env, Box::new(NoMaps), out);
    let (signals, sig_rx) = bounded(16);
    let (uevents, uev_rx) = unbounded();
    let (dm_events, dmev_rx) = unbounded();
    let (checks, res_rx) = unbounded();
    let (ioerr, ioerr_rx) = unbounded();
    let (requests, req_rx) = unbounded();
    let inbox = Inbox {
        signals: sig_rx,
        uevents: uev_rx,
        dm_events: dmev_rx,
        checks: res_rx,
        ioerr: ioerr_rx,
        requests: req_rx,
        reloads: reloads_rx,
        // The fake DM reloads on the owner's thread.
        loads: crossbeam_channel::never(),
        // No CLI server asks for status reads here.
        status_wanted: crossbeam_channel::never(),
    };
    let thread = std::thread::spawn(move || {
        let result = serve(&mut owner, inbox);
        let cpu = Duration::from(clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID).expect("thread CPU clock"));
        Ended {
            result,
            state: owner.state,
            cpu,
        }
    });
    (
        Workers {
            signals,
            uevents,
            dm_events,
            checks,
            ioerr,
            requests,
        },
        Loop {
            checker,
            thread,
            _sys: sys,
        },
    )
}

/// Waits up to `limit` for the loop to return.
fn ended_within(thread: JoinHandle<Ended>, limit: Duration) -> Ended {
    let deadline = Instant::now() + limit;
    while !thread.is_finished() {
        assert!(Instant::now() < deadline, "the loop did not end within {limit:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
    thread.join().expect("the loop does not panic")
}

/// A fatal worker's end: the loop shuts the owner down (the checker loop is told to
/// stop) and returns which worker ended, for a non-zero exit.
fn assert_fatal(l: Loop, expected: WorkerDied) {
    let ended = ended_within(l.thread, Duration::from_secs(5));
    assert_eq!(ended.result, Err(expected));
    assert_eq!(ended.state, DaemonState::Shutdown);
    assert_eq!(l.checker.try_iter().collect::<Vec<_>>(), vec![Control::Shutdown]);
}

/// A worker the daemon runs on without: the loop stops selecting its channel, keeps
/// serving the others (here SIGTERM) and does not spin meanwhile.
fn assert_runs_on(signals: &Sender<SignalEvent>, l: Loop) {
    let idle = Duration::from_millis(500);
    std::thread::sleep(idle);
    assert!(!l.thread.is_finished(), "the loop ended");
    signals.send(SignalEvent::Shutdown).unwrap();
    let ended = ended_within(l.thread, Duration::from_secs(5));
    assert_eq!(ended.result, Ok(()));
    assert_eq!(ended.state, DaemonState::Shutdown);
    // A spin would use most of `idle` even on a busy machine.
    assert!(ended.cpu < idle / 5, "the loop used {:?} of CPU in {idle:?}", ended.cpu);
}

#[test]
fn a_dead_checker_thread_shuts_the_daemon_down_with_an_error() {
    let (w, l) = start();
    drop(w.checks);
    assert_fatal(l, WorkerDied::Checker);
}

#[test]
fn a_dead_cli_listener_shuts_the_daemon_down_with_an_error() {
    let (w, l) = start();
    drop(w.requests);
    assert_fatal(l, WorkerDied::CliServer);
}

#[test]
fn a_dead_signal_thread_shuts_the_daemon_down_with_an_error() {
    let (w, l) = start();
    drop(w.signals);
    assert_fatal(l, WorkerDied::Signals);
}

#[test]
fn the_daemon_runs_on_without_the_uevent_reader() {
    let (w, l) = start();
    drop(w.uevents);
    assert_runs_on(&w.signals, l);
}

#[test]
fn the_daemon_runs_on_without_the_dm_event_thread() {
    let (w, l) = start();
    // a map the owner does not have is passed over
    w.dm_events.send(vec!["nosuchmap".into()]).unwrap();
    drop(w.dm_events);
    assert_runs_on(&w.signals, l);
}

#[test]
fn the_daemon_runs_on_when_io_err_stat_reports_stop() {
    let (w, l) = start();
    drop(w.ioerr);
    assert_runs_on(&w.signals, l);
}

#[test]
fn sigterm_ends_the_loop_cleanly() {
    let (w, l) = start();
    w.signals.send(SignalEvent::Shutdown).unwrap();
    let ended = ended_within(l.thread, Duration::from_secs(5));
    assert_eq!(ended.result, Ok(()));
    assert_eq!(l.checker.try_iter().collect::<Vec<_>>(), vec![Control::Shutdown]);
}
