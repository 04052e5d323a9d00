//! A small fixed pool of worker threads for checks that block in an ioctl
//! (`tur`, `readsector0`, `hp_sw`, `rdac`).
//!
//! Why threads and not the sg driver's async write/read interface: that interface
//! only exists on `/dev/sgN` character nodes, which need the optional `sg` module
//! and a block-to-sg mapping per path, while SG_IO works on the `/dev/sdX` node the
//! daemon already knows. A fixed pool bounds the threads whatever the path count;
//! the kernel enforces `checker_timeout` on each command, and the pool adds its own
//! deadline in case a command hangs in the driver anyway.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::fs::File;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use super::scheduler::PathId;
use super::sense::{MSG_DOWN, MSG_TIMEOUT};
use super::sg;
use super::state::{PathState, Verdict};

/// The blocking checks the pool runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockingCheck {
    Tur,
    Readsector0,
    HpSw,
    Rdac,
}

/// Extra time over the command timeout before the pool gives up on a worker.
const GRACE: Duration = Duration::from_secs(1);

struct Job {
    token: u64,
    path: PathId,
    check: BlockingCheck,
    file: Arc<File>,
    timeout: Duration,
}

/// A worker's answer.
pub struct Done {
    token: u64,
    path: PathId,
    verdict: Verdict,
}

struct Running {
    token: u64,
    started: Instant,
    timed_out: bool,
}

/// A finished blocking check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolResult {
    pub path: PathId,
    pub verdict: Verdict,
    pub took: Duration,
}

pub struct BlockingPool {
    /// Dropping the pool closes this channel, which ends the workers once their
    /// current ioctl returns. They are never joined: shutdown must not wait for a
    /// hung LUN.
    jobs: Sender<Job>,
    done: Receiver<Done>,
    files: HashMap<PathId, (PathBuf, Arc<File>)>,
    running: HashMap<PathId, Running>,
    /// Deadlines of running jobs; entries of finished jobs are skipped when popped.
    deadlines: BinaryHeap<Reverse<(Instant, PathId, u64)>>,
    next_token: u64,
}

/// What a worker runs for one job; the real one issues SG_IO, tests pass fakes.
pub type Runner = Arc<dyn Fn(BlockingCheck, RawFd, Duration) -> Verdict + Send + Sync>;

fn run_sg(check: BlockingCheck, fd: RawFd, timeout: Duration) -> Verdict {
    match check {
        BlockingCheck::Tur => sg::tur(fd, timeout),
        BlockingCheck::Readsector0 => sg::readsector0(fd, timeout),
        BlockingCheck::HpSw => sg::hp_sw(fd, timeout),
        BlockingCheck::Rdac => sg::rdac(fd, timeout),
    }
}

impl BlockingPool {
    /// Starts `workers` threads (at least one) issuing SG_IO.
    pub fn new(workers: usize) -> std::io::Result<BlockingPool> {
        BlockingPool::with_runner(workers, Arc::new(run_sg))
    }

    /// Starts `workers` threads running `runner` for each job.
    pub fn with_runner(workers: usize, runner: Runner) -> std::io::Result<BlockingPool> {
        let (jtx, jrx) = crossbeam_channel::unbounded::<Job>();
        let (dtx, drx) = crossbeam_channel::unbounded::<Done>();
        for n in 0..workers.max(1) {
            let jrx = jrx.clone();
            let dtx = dtx.clone();
            let runner = Arc::clone(&runner);
            std::thread::Builder::new().name(format!("checker-{n}")).spawn(move || {
                for job in jrx.iter() {
                    let verdict = runner(job.check, job.file.as_raw_fd(), job.timeout);
                    if dtx.send(Done { token: job.token, path: job.path, verdict }).is_err() {
                        break;
                    }
                }
            })?;
        }
        Ok(BlockingPool {
            jobs: jtx,
            done: drx,
            files: HashMap::new(),
            running: HashMap::new(),
            deadlines: BinaryHeap::new(),
            next_token: 1,
        })
    }

    /// The channel workers answer on, for the loop's `select`.
    pub fn done_channel(&self) -> &Receiver<Done> {
        &self.done
    }

    fn is_current(&self, path: PathId, token: u64) -> bool {
        self.running.get(&path).is_some_and(|r| r.token == token && !r.timed_out)
    }

    /// The earliest deadline of a check not yet reported.
    pub fn next_deadline(&mut self) -> Option<Instant> {
        while let Some(Reverse((at, path, token))) = self.deadlines.peek().copied() {
            if self.is_current(path, token) {
                return Some(at);
            }
            self.deadlines.pop();
        }
        None
    }

    /// Closes the device of a removed path (a running job keeps its own handle).
    pub fn forget(&mut self, path: PathId) {
        self.files.remove(&path);
    }

    fn file(&mut self, path: PathId, dev: &Path) -> std::io::Result<Arc<File>> {
        if let Some((d, f)) = self.files.get(&path)
            && d == dev
        {
            return Ok(Arc::clone(f));
        }
        let f = Arc::new(std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(dev)?);
        self.files.insert(path, (dev.to_path_buf(), Arc::clone(&f)));
        Ok(f)
    }

    /// Hands a check to the workers. Returns a verdict right away when it cannot
    /// run: the device does not open, or the previous check of this path is still
    /// running (pending) or hung past its deadline (timeout).
    pub fn start(&mut self, path: PathId, dev: &Path, check: BlockingCheck, now: Instant, timeout: Duration) -> Option<Verdict> {
        if let Some(r) = self.running.get(&path) {
            return Some(if r.timed_out {
                Verdict::new(PathState::Timeout, MSG_TIMEOUT)
            } else {
                Verdict::new(PathState::Pending, "")
            });
        }
        let file = match self.file(path, dev) {
            Ok(f) => f,
            Err(e) => {
                log::debug!("{}: open: {e}", dev.display());
                return Some(Verdict::new(PathState::Down, MSG_DOWN));
            }
        };
        let token = self.next_token;
        self.next_token += 1;
        if self.jobs.send(Job { token, path, check, file, timeout }).is_err() {
            return Some(Verdict::new(PathState::Wild, ""));
        }
        self.running.insert(path, Running { token, started: now, timed_out: false });
        self.deadlines.push(Reverse((now + timeout + GRACE, path, token)));
        None
    }

    /// Turns one worker answer into a result (None for a stale or late answer).
    pub fn finish(&mut self, done: Done, now: Instant) -> Option<PoolResult> {
        let r = self.running.get(&done.path)?;
        if r.token != done.token {
            return None;
        }
        let r = self.running.remove(&done.path)?;
        if r.timed_out {
            return None;
        }
        Some(PoolResult { path: done.path, verdict: done.verdict, took: now.saturating_duration_since(r.started) })
    }

    /// Collects answers without blocking and reports checks past their deadline.
    pub fn poll(&mut self, now: Instant) -> Vec<PoolResult> {
        let mut out = Vec::new();
        while let Ok(d) = self.done.try_recv() {
            out.extend(self.finish(d, now));
        }
        while let Some(Reverse((at, path, token))) = self.deadlines.peek().copied() {
            if at > now {
                break;
            }
            self.deadlines.pop();
            if let Some(r) = self.running.get_mut(&path)
                && r.token == token
                && !r.timed_out
            {
                r.timed_out = true;
                out.push(PoolResult {
                    path,
                    verdict: Verdict::new(PathState::Timeout, MSG_TIMEOUT),
                    took: now.saturating_duration_since(r.started),
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossbeam_channel::bounded;

    /// A pool whose single worker answers `Up` only when the test says so.
    fn gated() -> (BlockingPool, Sender<()>, tempfile::NamedTempFile) {
        let (gate_tx, gate_rx) = bounded::<()>(0);
        let runner: Runner = Arc::new(move |check, _fd, _t| {
            assert_eq!(check, BlockingCheck::Tur);
            let _ = gate_rx.recv();
            Verdict::new(PathState::Up, " reports path is up")
        });
        let pool = BlockingPool::with_runner(1, runner).unwrap();
        (pool, gate_tx, tempfile::NamedTempFile::new().unwrap())
    }

    #[test]
    fn answer_before_deadline() {
        let (mut pool, gate, dev) = gated();
        let t0 = Instant::now();
        assert_eq!(pool.start(1, dev.path(), BlockingCheck::Tur, t0, Duration::from_secs(5)), None);
        // Asked again while running: pending, no second job.
        let again = pool.start(1, dev.path(), BlockingCheck::Tur, t0, Duration::from_secs(5));
        assert_eq!(again, Some(Verdict::new(PathState::Pending, "")));
        assert_eq!(pool.next_deadline(), Some(t0 + Duration::from_secs(6)));
        gate.send(()).unwrap();
        let done = pool.done_channel().recv_timeout(Duration::from_secs(20)).unwrap();
        let r = pool.finish(done, t0 + Duration::from_millis(1500)).unwrap();
        assert_eq!((r.path, r.verdict.state, r.took), (1, PathState::Up, Duration::from_millis(1500)));
        assert_eq!(pool.next_deadline(), None);
    }

    #[test]
    fn hung_worker_times_out_once_and_late_answer_is_dropped() {
        let (mut pool, gate, dev) = gated();
        let t0 = Instant::now();
        let timeout = Duration::from_secs(5);
        assert_eq!(pool.start(7, dev.path(), BlockingCheck::Tur, t0, timeout), None);
        // The deadline is the command timeout plus a second of grace.
        assert!(pool.poll(t0 + Duration::from_millis(5999)).is_empty());
        let r = pool.poll(t0 + Duration::from_secs(6));
        assert_eq!(r, vec![PoolResult { path: 7, verdict: Verdict::new(PathState::Timeout, " timed out"), took: Duration::from_secs(6) }]);
        assert!(pool.poll(t0 + Duration::from_secs(60)).is_empty());
        // Still hung: every new check says timeout at once.
        let again = pool.start(7, dev.path(), BlockingCheck::Tur, t0 + Duration::from_secs(10), timeout);
        assert_eq!(again, Some(Verdict::new(PathState::Timeout, " timed out")));
        // The worker finally returns: its answer is stale.
        gate.send(()).unwrap();
        let done = pool.done_channel().recv_timeout(Duration::from_secs(20)).unwrap();
        assert_eq!(pool.finish(done, t0 + Duration::from_secs(11)), None);
        // The path can be checked again.
        assert_eq!(pool.start(7, dev.path(), BlockingCheck::Tur, t0 + Duration::from_secs(12), timeout), None);
        gate.send(()).unwrap();
        let done = pool.done_channel().recv_timeout(Duration::from_secs(20)).unwrap();
        assert_eq!(pool.finish(done, t0 + Duration::from_secs(13)).map(|r| r.verdict.state), Some(PathState::Up));
    }

    #[test]
    fn unopenable_device_is_down_without_a_job() {
        let (mut pool, _gate, _dev) = gated();
        let v = pool.start(2, Path::new("/dev/mpd-missing"), BlockingCheck::Tur, Instant::now(), Duration::from_secs(1));
        assert_eq!(v, Some(Verdict::new(PathState::Down, MSG_DOWN)));
        assert_eq!(pool.next_deadline(), None);
    }
}
