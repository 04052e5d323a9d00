//! The io-err-stat thread: runs the [`Sampler`] over an [`IoEngine`] at 10 Hz.
//!
//! The daemon starts it lazily (on the first test, as upstream does since it used to
//! burn CPU when unconfigured) through [`IoErrStat`]. While no test runs and no read is
//! in flight it blocks on its command channel instead of ticking.

use std::io;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TryRecvError};

use super::aio_engine::AioEngine;
use super::engine::IoEngine;
use super::sampler::{Counts, RESUBMIT_PERIOD, Sampler, TestSpec};
use super::state::Event;

/// Commands to the thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cmd {
    Start(TestSpec),
    /// Drop the test of this path (removed, released early).
    Cancel(String),
    Shutdown,
}

/// What the thread reports. The daemon turns `Finished` into
/// [`super::Event::TestFinished`] (adding the map's active path count), `Progress` into
/// `TestProgress`, `EnqueueFailed` into `EnqueueFailed` and `Exited` into `TestsLost`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IoErrEvent {
    Progress {
        path: String,
        counts: Counts,
    },
    Finished {
        path: String,
        counts: Counts,
    },
    EnqueueFailed {
        path: String,
        error: String,
    },
    /// The thread died (a panic): every test it ran is lost.
    Exited,
}

impl IoErrEvent {
    /// The state-machine event for this report; `map_active_paths` is the active path
    /// count of the path's map when the report is handled.
    pub fn into_event(self, map_active_paths: usize) -> Event {
        match self {
            IoErrEvent::Progress { path, counts } => Event::TestProgress {
                path,
                ios: counts.ios,
                errs: counts.errs,
            },
            IoErrEvent::Finished { path, counts } => Event::TestFinished {
                path,
                ios: counts.ios,
                errs: counts.errs,
                map_active_paths,
            },
            IoErrEvent::EnqueueFailed { path, .. } => Event::EnqueueFailed { path },
            IoErrEvent::Exited => Event::TestsLost,
        }
    }

    /// The path the report is about (none for `Exited`).
    pub fn path(&self) -> Option<&str> {
        match self {
            IoErrEvent::Progress { path, .. }
            | IoErrEvent::Finished { path, .. }
            | IoErrEvent::EnqueueFailed { path, .. } => Some(path),
            IoErrEvent::Exited => None,
        }
    }
}

/// Sends [`IoErrEvent::Exited`] when the thread unwinds from a panic, so the daemon
/// gives back the paths it held instead of waiting for verdicts that never come.
struct ExitNotice(Sender<IoErrEvent>);

impl Drop for ExitNotice {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let _ = self.0.send(IoErrEvent::Exited);
        }
    }
}

/// How often live counts are reported.
const PROGRESS_PERIOD: Duration = Duration::from_secs(1);

/// Spawns the thread over the kernel-AIO engine.
pub fn spawn_io_err_stat(rx: Receiver<Cmd>, tx: Sender<IoErrEvent>) -> io::Result<JoinHandle<()>> {
    let eng = AioEngine::new()?;
    spawn_io_err_stat_with(eng, rx, tx)
}

/// Spawns the thread over any engine (tests use the fake).
pub fn spawn_io_err_stat_with<E: IoEngine + Send + 'static>(
    eng: E,
    rx: Receiver<Cmd>,
    tx: Sender<IoErrEvent>,
) -> io::Result<JoinHandle<()>> {
    let h = std::thread::Builder::new()
        .name("io_err_stat".into())
        .spawn(move || run(eng, rx, tx))?;
    log::info!("io error statistic: io_error statistic thread started");
    Ok(h)
}

/// Applies one command; false means shut down.
fn apply<E: IoEngine>(s: &mut Sampler, eng: &mut E, tx: &Sender<IoErrEvent>, cmd: Cmd) -> bool {
    match cmd {
        Cmd::Start(spec) => {
            let path = spec.path.clone();
            if let Err(e) = s.start(eng, spec, Instant::now()) {
                let error = e.to_string();
                log::info!("io error statistic: {path}: cannot start test: {error}");
                return tx.send(IoErrEvent::EnqueueFailed { path, error }).is_ok();
            }
            log::info!("io error statistic: {path}: test started");
            true
        }
        Cmd::Cancel(path) => {
            s.cancel(eng, &path);
            true
        }
        Cmd::Shutdown => false,
    }
}

fn run<E: IoEngine>(mut eng: E, rx: Receiver<Cmd>, tx: Sender<IoErrEvent>) {
    // A local: on a panic it drops before the engine (a parameter), whose drop may wait
    // for reads stuck on a hung path, so the daemon hears of it at once.
    let _notice = ExitNotice(tx.clone());
    let mut s = Sampler::new();
    let mut buf = Vec::new();
    let mut last_progress = Instant::now();
    'outer: loop {
        if s.is_empty() && eng.in_flight() == 0 {
            let Ok(cmd) = rx.recv() else { break };
            if !apply(&mut s, &mut eng, &tx, cmd) {
                break;
            }
        }
        loop {
            match rx.try_recv() {
                Ok(cmd) => {
                    if !apply(&mut s, &mut eng, &tx, cmd) {
                        break 'outer;
                    }
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => break 'outer,
            }
        }
        let tick = Instant::now();
        s.send(&mut eng, tick);
        let deadline = tick + RESUBMIT_PERIOD;
        loop {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            buf.clear();
            if let Err(e) = eng.reap(deadline - now, &mut buf) {
                log::error!("io error statistic: async io events returned error: {e}");
                std::thread::sleep(deadline - now);
                break;
            }
            s.account(&buf, Instant::now());
        }
        let now = Instant::now();
        for r in s.finish(&mut eng, now) {
            if tx
                .send(IoErrEvent::Finished {
                    path: r.path,
                    counts: r.counts,
                })
                .is_err()
            {
                break 'outer;
            }
        }
        if now.duration_since(last_progress) >= PROGRESS_PERIOD {
            last_progress = now;
            for r in s.progress() {
                if tx
                    .send(IoErrEvent::Progress {
                        path: r.path,
                        counts: r.counts,
                    })
                    .is_err()
                {
                    break 'outer;
                }
            }
        }
    }
    // Cancel what still runs; dropping the engine then waits for in-flight reads
    // before their buffers are freed (and leaks those of reads that never end).
    for r in s.progress() {
        s.cancel(&mut eng, &r.path);
    }
}

/// Starts an io-err-stat thread reading commands from the receiver and reporting to
/// the sender: [`spawn_io_err_stat`] in the daemon; tests give another engine or a fake.
pub type Spawner = Box<dyn FnMut(Receiver<Cmd>, Sender<IoErrEvent>) -> io::Result<JoinHandle<()>> + Send>;

/// The daemon's handle: starts the thread on first use, stops and joins it on shutdown.
pub struct IoErrStat {
    events: Sender<IoErrEvent>,
    spawn: Spawner,
    running: Option<(Sender<Cmd>, JoinHandle<()>)>,
}

impl IoErrStat {
    /// `events` is where the thread's reports go (the state thread's inbox).
    pub fn new(events: Sender<IoErrEvent>) -> IoErrStat {
        IoErrStat::with_spawner(events, Box::new(spawn_io_err_stat))
    }

    /// Like [`IoErrStat::new`], with the thread started by `spawn`.
    pub fn with_spawner(events: Sender<IoErrEvent>, spawn: Spawner) -> IoErrStat {
        IoErrStat {
            events,
            spawn,
            running: None,
        }
    }

    pub fn is_running(&self) -> bool {
        self.running.is_some()
    }

    /// Starts a test, starting the thread first if needed. An error means the thread
    /// could not be started: treat it as `EnqueueFailed`.
    pub fn start_test(&mut self, spec: TestSpec) -> io::Result<()> {
        if self.running.is_none() {
            let (tx, rx) = crossbeam_channel::unbounded();
            let h = (self.spawn)(rx, self.events.clone())?;
            self.running = Some((tx, h));
        }
        self.send(Cmd::Start(spec))
    }

    /// Cancels a test (no-op when the thread never started).
    pub fn cancel_test(&mut self, path: &str) -> io::Result<()> {
        if self.running.is_none() {
            return Ok(());
        }
        self.send(Cmd::Cancel(path.to_string()))
    }

    fn send(&mut self, cmd: Cmd) -> io::Result<()> {
        match &self.running {
            Some((tx, _)) => tx
                .send(cmd)
                .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "io_err_stat thread is gone")),
            None => Ok(()),
        }
    }

    /// After [`IoErrEvent::Exited`]: lets the dead thread go (not joined: its engine may
    /// still wait for reads stuck on a hung path), so that the next test starts a new one.
    pub fn forget_exited(&mut self) {
        self.running = None;
    }

    /// Stops and joins the thread (no-op when it never started).
    pub fn shutdown(&mut self) {
        if let Some((tx, h)) = self.running.take() {
            let _ = tx.send(Cmd::Shutdown);
            if h.join().is_err() {
                log::error!("io error statistic: io_err_stat thread panicked");
            }
        }
    }
}

impl Drop for IoErrStat {
    fn drop(&mut self) {
        self.shutdown();
    }
}
