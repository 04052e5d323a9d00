//! Worker threads for checks that block in an ioctl (`tur`, `readsector0`,
//! `hp_sw`, `rdac`).
//!
//! Why threads and not the sg driver's async write/read interface: that interface
//! only exists on `/dev/sgN` character nodes, which need the optional `sg` module
//! and a block-to-sg mapping per path, while SG_IO works on the `/dev/sdX` node the
//! daemon already knows.
//!
//! A check that hangs (a portal that stops answering, a backstore stuck in the
//! target) holds its thread until the kernel gives the command up, which can take
//! far longer than `checker_timeout` while SCSI error handling runs. So the pool
//! never lets one path's hang cost another path anything:
//! - a check runs at once on an idle worker, or on a new one when none is idle,
//!   as upstream runs each TUR in a thread of its own (up to [`MAX_WORKERS`]);
//! - a check's deadline starts when a worker takes it, never while it waits;
//! - each path has at most one check in flight, so a hung path holds one thread;
//! - workers beyond the configured minimum that stay idle for [`RETIRE_AFTER`]
//!   end, so a storm does not leave hundreds of threads behind.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
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
use crate::discovery::pgpolicy::PRIO_UNDEF;
use crate::discovery::prio::PrioJob;
use crate::persist::{PrJob, PrOutcome};

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
/// Threads at most; past it checks wait for a worker (their deadline has not
/// started, so waiting never turns into a timeout).
pub const MAX_WORKERS: usize = 1024;
/// An extra worker idle this long ends.
pub const RETIRE_AFTER: Duration = Duration::from_secs(30);
/// SG_IO needs little stack: the data buffers are on the heap or small.
const WORKER_STACK: usize = 256 * 1024;

/// What a worker does for a path.
enum Work {
    Check {
        check: BlockingCheck,
        file: Arc<File>,
    },
    /// The check already answered elsewhere (directio, `none`): only the priority
    /// refresh and the registration are left; `took` is what the check took.
    AfterOnly {
        verdict: Verdict,
        took: Duration,
    },
}

struct Job {
    token: u64,
    path: PathId,
    work: Work,
    /// Run after a check that found the path usable, as upstream refreshes a
    /// path's priority on every check.
    prio: Option<Arc<PrioJob>>,
    /// Run after a check that found the path usable, before its verdict is reported,
    /// so the path is registered before the owner reinstates it, as upstream does.
    pr: Option<Arc<PrJob>>,
    timeout: Duration,
}

impl Job {
    /// The check's timeout, and the prioritizer's and registration's after it.
    fn deadline(&self, now: Instant) -> Instant {
        let check = u32::from(matches!(self.work, Work::Check { .. }));
        let commands = check + u32::from(self.prio.is_some()) + self.pr.as_ref().map_or(0, |j| j.max_commands());
        now + self.timeout * commands.max(1) + GRACE
    }

    fn earlier(&self) -> Duration {
        match self.work {
            Work::AfterOnly { took, .. } => took,
            Work::Check { .. } => Duration::ZERO,
        }
    }
}

/// What a worker does after a check that found the path usable.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AfterCheck {
    pub prio: Option<Arc<PrioJob>>,
    pub pr: Option<Arc<PrJob>>,
}

impl AfterCheck {
    pub fn is_empty(&self) -> bool {
        self.prio.is_none() && self.pr.is_none()
    }
}

/// A worker's answer.
pub struct Done {
    worker: usize,
    token: u64,
    path: PathId,
    verdict: Verdict,
    prio: Option<i32>,
    pr: Option<PrOutcome>,
}

/// Where a path's one check in flight is.
enum Slot {
    /// Waiting for a worker (only when [`MAX_WORKERS`] are busy).
    Queued,
    Running {
        token: u64,
        started: Instant,
        /// Time the verdict took before this job (a directio read).
        earlier: Duration,
        timed_out: bool,
    },
}

struct Worker {
    id: usize,
    jobs: Sender<Job>,
    idle_since: Instant,
}

/// A finished blocking check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolResult {
    pub path: PathId,
    pub verdict: Verdict,
    /// The refreshed priority, when the job had a prioritizer and the path was usable.
    pub prio: Option<i32>,
    /// The registration's result, when the job had one and the path was usable.
    pub pr: Option<PrOutcome>,
    pub took: Duration,
}

pub struct BlockingPool {
    runner: Runner,
    prio_runner: PrioRunner,
    pr_runner: PrRunner,
    min_workers: usize,
    max_workers: usize,
    done_tx: Sender<Done>,
    done: Receiver<Done>,
    /// Idle workers, longest idle first. Dropping a worker closes its job channel,
    /// which ends its thread once its current ioctl returns. Workers are never
    /// joined: shutdown must not wait for a hung LUN.
    idle: VecDeque<Worker>,
    busy: HashMap<usize, Worker>,
    next_worker: usize,
    queue: VecDeque<Job>,
    files: HashMap<PathId, (PathBuf, Arc<File>)>,
    slots: HashMap<PathId, Slot>,
    /// Deadlines of running jobs; entries of finished jobs are skipped when popped.
    deadlines: BinaryHeap<Reverse<(Instant, PathId, u64)>>,
    next_token: u64,
}

/// What a worker runs for one job; the real one issues SG_IO, tests pass fakes.
pub type Runner = Arc<dyn Fn(PathId, BlockingCheck, RawFd, Duration) -> Verdict + Send + Sync>;

/// How a worker refreshes a priority; the real one runs the prioritizer.
pub type PrioRunner = Arc<dyn Fn(&PrioJob, Duration) -> i32 + Send + Sync>;

/// How a worker registers a path's reservation key; the real one sends SG_IO.
pub type PrRunner = Arc<dyn Fn(&PrJob, Duration) -> PrOutcome + Send + Sync>;

fn run_prio(job: &PrioJob, timeout: Duration) -> i32 {
    job.run(timeout).unwrap_or_else(|e| {
        log::debug!("{}: prio {}: {e}", job.dev, job.prio.name());
        PRIO_UNDEF
    })
}

fn run_sg(_path: PathId, check: BlockingCheck, fd: RawFd, timeout: Duration) -> Verdict {
    match check {
        BlockingCheck::Tur => sg::tur(fd, timeout),
        BlockingCheck::Readsector0 => sg::readsector0(fd, timeout),
        BlockingCheck::HpSw => sg::hp_sw(fd, timeout),
        BlockingCheck::Rdac => sg::rdac(fd, timeout),
    }
}

impl BlockingPool {
    /// A pool of at least `workers` threads issuing SG_IO.
    pub fn new(workers: usize, now: Instant) -> std::io::Result<BlockingPool> {
        BlockingPool::with_runner(
            workers,
            MAX_WORKERS,
            Arc::new(run_sg),
            Arc::new(run_prio),
            Arc::new(|job: &PrJob, timeout| job.run(timeout)),
            now,
        )
    }

    /// A pool of `min_workers..=max_workers` threads running `runner` for each
    /// check, `prio_runner` for each priority refresh and `pr_runner` for each
    /// registration.
    pub fn with_runner(
        min_workers: usize,
        max_workers: usize,
        runner: Runner,
        prio_runner: PrioRunner,
        pr_runner: PrRunner,
        now: Instant,
    ) -> std::io::Result<BlockingPool> {
        let (done_tx, done) = crossbeam_channel::unbounded::<Done>();
        let min_workers = min_workers.max(1);
        let mut pool = BlockingPool {
            runner,
            prio_runner,
            pr_runner,
            min_workers,
            max_workers: max_workers.max(min_workers),
            done_tx,
            done,
            idle: VecDeque::new(),
            busy: HashMap::new(),
            next_worker: 0,
            queue: VecDeque::new(),
            files: HashMap::new(),
            slots: HashMap::new(),
            deadlines: BinaryHeap::new(),
            next_token: 1,
        };
        for _ in 0..min_workers {
            let w = pool.spawn_worker(now)?;
            pool.idle.push_back(w);
        }
        Ok(pool)
    }

    fn spawn_worker(&mut self, now: Instant) -> std::io::Result<Worker> {
        let id = self.next_worker;
        let (jtx, jrx) = crossbeam_channel::bounded::<Job>(1);
        let dtx = self.done_tx.clone();
        let runner = Arc::clone(&self.runner);
        let prio_runner = Arc::clone(&self.prio_runner);
        let pr_runner = Arc::clone(&self.pr_runner);
        std::thread::Builder::new()
            .name(format!("checker-{id}"))
            .stack_size(WORKER_STACK)
            .spawn(move || {
                for job in jrx.iter() {
                    let verdict = match &job.work {
                        Work::Check { check, file } => runner(job.path, *check, file.as_raw_fd(), job.timeout),
                        Work::AfterOnly { verdict, .. } => verdict.clone(),
                    };
                    let usable = matches!(verdict.state, PathState::Up | PathState::Ghost);
                    let pr = job.pr.as_deref().filter(|_| usable).map(|j| pr_runner(j, job.timeout));
                    let prio = job
                        .prio
                        .as_deref()
                        .filter(|_| usable)
                        .map(|p| prio_runner(p, job.timeout));
                    if dtx
                        .send(Done {
                            worker: id,
                            token: job.token,
                            path: job.path,
                            verdict,
                            prio,
                            pr,
                        })
                        .is_err()
                    {
                        break;
                    }
                }
            })?;
        self.next_worker += 1;
        Ok(Worker {
            id,
            jobs: jtx,
            idle_since: now,
        })
    }

    /// Threads alive or still stuck in a job (hung ones included).
    pub fn workers(&self) -> usize {
        self.idle.len() + self.busy.len()
    }

    /// Checks waiting for a worker.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// The channel workers answer on, for the loop's `select`.
    pub fn done_channel(&self) -> &Receiver<Done> {
        &self.done
    }

    fn is_running(&self, path: PathId, token: u64) -> bool {
        matches!(self.slots.get(&path), Some(Slot::Running { token: t, timed_out: false, .. }) if *t == token)
    }

    /// The earliest deadline of a check not yet reported, or the next retirement
    /// of an idle extra worker.
    pub fn next_deadline(&mut self) -> Option<Instant> {
        let mut next = None;
        while let Some(Reverse((at, path, token))) = self.deadlines.peek().copied() {
            if self.is_running(path, token) {
                next = Some(at);
                break;
            }
            self.deadlines.pop();
        }
        let retire = (self.workers() > self.min_workers)
            .then(|| self.idle.front().map(|w| w.idle_since + RETIRE_AFTER))
            .flatten();
        [next, retire].into_iter().flatten().min()
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
        let f = Arc::new(
            std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(dev)?,
        );
        self.files.insert(path, (dev.to_path_buf(), Arc::clone(&f)));
        Ok(f)
    }

    /// Hands a check to a worker. Returns a verdict right away when it cannot
    /// run: the device does not open, or the previous check of this path is still
    /// waiting or running (pending) or hung past its deadline (timeout). `after`
    /// runs when the check finds the path usable.
    pub fn start(
        &mut self,
        path: PathId,
        dev: &Path,
        check: BlockingCheck,
        after: AfterCheck,
        now: Instant,
        timeout: Duration,
    ) -> Option<Verdict> {
        if let Some(v) = self.busy_verdict(path) {
            return Some(v);
        }
        let file = match self.file(path, dev) {
            Ok(f) => f,
            Err(e) => {
                log::debug!("{}: open: {e}", dev.display());
                return Some(Verdict::new(PathState::Down, MSG_DOWN));
            }
        };
        self.enqueue(path, Work::Check { check, file }, after, now, timeout);
        None
    }

    /// Runs `after` for a path whose check answered elsewhere with `verdict` after
    /// `took`; the result carries both. Returns the verdict right away when the path
    /// already has a job in flight.
    pub fn start_after(
        &mut self,
        path: PathId,
        verdict: Verdict,
        took: Duration,
        after: AfterCheck,
        now: Instant,
        timeout: Duration,
    ) -> Option<Verdict> {
        if let Some(v) = self.busy_verdict(path) {
            return Some(v);
        }
        self.enqueue(path, Work::AfterOnly { verdict, took }, after, now, timeout);
        None
    }

    /// What a path with a job in flight reports instead of starting another.
    fn busy_verdict(&self, path: PathId) -> Option<Verdict> {
        match self.slots.get(&path)? {
            Slot::Running { timed_out: true, .. } => Some(Verdict::new(PathState::Timeout, MSG_TIMEOUT)),
            _ => Some(Verdict::new(PathState::Pending, "")),
        }
    }

    fn enqueue(&mut self, path: PathId, work: Work, after: AfterCheck, now: Instant, timeout: Duration) {
        let token = self.next_token;
        self.next_token += 1;
        self.slots.insert(path, Slot::Queued);
        self.queue.push_back(Job {
            token,
            path,
            work,
            prio: after.prio,
            pr: after.pr,
            timeout,
        });
        self.dispatch(now);
    }

    /// An idle worker, or a new one while under the maximum.
    fn free_worker(&mut self, now: Instant) -> Option<Worker> {
        if let Some(w) = self.idle.pop_back() {
            return Some(w);
        }
        if self.workers() >= self.max_workers {
            return None;
        }
        match self.spawn_worker(now) {
            Ok(w) => Some(w),
            Err(e) => {
                // Checks wait for a running worker instead; nothing is lost.
                log::warn!(
                    "checker: cannot start another worker thread ({} running): {e}",
                    self.workers()
                );
                None
            }
        }
    }

    /// Starts waiting checks on free workers; their deadlines start now.
    fn dispatch(&mut self, now: Instant) {
        while !self.queue.is_empty() {
            let Some(w) = self.free_worker(now) else { return };
            let Some(job) = self.queue.pop_front() else {
                self.idle.push_back(w);
                return;
            };
            let (path, token, deadline, earlier) = (job.path, job.token, job.deadline(now), job.earlier());
            match w.jobs.try_send(job) {
                Ok(()) => {
                    self.slots.insert(
                        path,
                        Slot::Running {
                            token,
                            started: now,
                            earlier,
                            timed_out: false,
                        },
                    );
                    self.deadlines.push(Reverse((deadline, path, token)));
                    self.busy.insert(w.id, w);
                }
                // Its thread is gone (only a panic in a check ends one): drop it, retry the job.
                Err(e) => self.queue.push_front(e.into_inner()),
            }
        }
    }

    /// Turns one worker answer into a result (None for a stale or late answer),
    /// and gives the freed worker the next waiting check.
    pub fn finish(&mut self, done: Done, now: Instant) -> Option<PoolResult> {
        if let Some(mut w) = self.busy.remove(&done.worker) {
            w.idle_since = now;
            self.idle.push_back(w);
        }
        let result = match self.slots.get(&done.path) {
            Some(&Slot::Running {
                token,
                started,
                earlier,
                timed_out,
            }) if token == done.token => {
                self.slots.remove(&done.path);
                (!timed_out).then(|| PoolResult {
                    path: done.path,
                    verdict: done.verdict,
                    prio: done.prio,
                    pr: done.pr,
                    took: earlier + now.saturating_duration_since(started),
                })
            }
            _ => None,
        };
        self.dispatch(now);
        result
    }

    /// Collects answers without blocking, reports checks past their deadline and
    /// ends extra workers that stayed idle.
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
            if let Some(Slot::Running {
                token: t,
                started,
                earlier,
                timed_out,
            }) = self.slots.get_mut(&path)
                && *t == token
                && !*timed_out
            {
                *timed_out = true;
                out.push(PoolResult {
                    path,
                    verdict: Verdict::new(PathState::Timeout, MSG_TIMEOUT),
                    prio: None,
                    pr: None,
                    took: *earlier + now.saturating_duration_since(*started),
                });
            }
        }
        while self.workers() > self.min_workers
            && self
                .idle
                .front()
                .is_some_and(|w| now.saturating_duration_since(w.idle_since) >= RETIRE_AFTER)
        {
            self.idle.pop_front();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossbeam_channel::{Receiver, unbounded};
    use std::collections::HashSet;
    use std::sync::Mutex;

    const T: Duration = Duration::from_secs(10);
    const WAIT: Duration = Duration::from_secs(20);
    const DOWN: PathId = 100;

    /// Paths in `hung` block until the test releases them through the returned
    /// sender; paths from [`DOWN`] on answer `Down`, every other path `Up` at
    /// once. The prioritizer answers the number its `args` hold.
    struct Fixture {
        pool: BlockingPool,
        release: Sender<PathId>,
        dev: tempfile::NamedTempFile,
        t0: Instant,
    }

    fn fixture(min: usize, max: usize, hung: &[PathId]) -> Fixture {
        let hung: HashSet<PathId> = hung.iter().copied().collect();
        let (release, released): (Sender<PathId>, Receiver<PathId>) = unbounded();
        let waiting = Mutex::new(HashSet::new());
        let runner: Runner = Arc::new(move |path, check, _fd, timeout| {
            assert_eq!((check, timeout), (BlockingCheck::Readsector0, T));
            if hung.contains(&path) {
                // Releases may come for other hung paths first: keep them for their owners.
                loop {
                    if waiting.lock().unwrap().remove(&path) {
                        break;
                    }
                    match released.recv_timeout(Duration::from_millis(5)) {
                        Ok(p) if p == path => break,
                        Ok(p) => {
                            waiting.lock().unwrap().insert(p);
                        }
                        Err(_) => {}
                    }
                }
            }
            if path >= DOWN {
                return Verdict::new(PathState::Down, MSG_DOWN);
            }
            Verdict::new(PathState::Up, " reports path is up")
        });
        let prio_runner: PrioRunner = Arc::new(|job, timeout| {
            assert_eq!(timeout, T);
            job.args.parse().unwrap()
        });
        let t0 = Instant::now();
        Fixture {
            pool: BlockingPool::with_runner(min, max, runner, prio_runner, pr_runner(), t0).unwrap(),
            release,
            dev: tempfile::NamedTempFile::new().unwrap(),
            t0,
        }
    }

    impl Fixture {
        fn at(&self, ms: u64) -> Instant {
            self.t0 + Duration::from_millis(ms)
        }
        fn start(&mut self, path: PathId, ms: u64) -> Option<Verdict> {
            let now = self.at(ms);
            self.pool.start(
                path,
                self.dev.path(),
                BlockingCheck::Readsector0,
                AfterCheck::default(),
                now,
                T,
            )
        }
        fn start_with_prio(&mut self, path: PathId, ms: u64, prio: i32) -> Option<Verdict> {
            let now = self.at(ms);
            let after = AfterCheck {
                prio: Some(prio_job(prio)),
                pr: None,
            };
            self.pool
                .start(path, self.dev.path(), BlockingCheck::Readsector0, after, now, T)
        }
        /// The next worker answer, applied at `ms`.
        fn answer(&mut self, ms: u64) -> Option<PoolResult> {
            let d = self.pool.done_channel().recv_timeout(WAIT).expect("a worker answers");
            let now = self.at(ms);
            self.pool.finish(d, now)
        }
    }

    fn prio_job(prio: i32) -> Arc<PrioJob> {
        Arc::new(PrioJob {
            prio: crate::discovery::prio::Prio::Alua,
            args: prio.to_string(),
            unless_ana: None,
            dev: "sdb".to_string(),
            hcil: crate::discovery::Hcil {
                host: 1,
                channel: 0,
                target: 0,
                lun: 0,
            },
            serial: String::new(),
            root: crate::discovery::SysfsRoot::new("/nonexistent"),
            dev_dir: PathBuf::from("/nonexistent"),
            attrs: crate::discovery::prio::OpenAttrs::default(),
        })
    }

    fn prio_only(prio: i32) -> AfterCheck {
        AfterCheck {
            prio: Some(prio_job(prio)),
            pr: None,
        }
    }

    /// Registers with the outcome the job's key names: 1 registered, else not.
    fn pr_runner() -> PrRunner {
        Arc::new(|job, timeout| {
            assert_eq!(timeout, T);
            match job.key {
                1 => PrOutcome::Registered { keys: 2, hold: None },
                _ => PrOutcome::NotRegistered { cleared: false },
            }
        })
    }

    fn pr_job(key: u64) -> Arc<PrJob> {
        Arc::new(PrJob {
            dev: "/dev/sdb".into(),
            key,
            aptpl: false,
            unset: false,
            ever_registered: false,
            read_hold: false,
        })
    }

    /// A registration runs after a check that finds the path usable, on the same
    /// worker, and its result comes with the verdict, so the owner registers a path
    /// before it reinstates it; a path found down is not registered.
    #[test]
    fn registration_runs_after_a_usable_check_only() {
        let mut f = fixture(1, 2, &[]);
        let now = f.at(0);
        let after = AfterCheck {
            prio: None,
            pr: Some(pr_job(1)),
        };
        assert_eq!(
            f.pool
                .start(1, f.dev.path(), BlockingCheck::Readsector0, after.clone(), now, T),
            None
        );
        // Room for the check and the registration's four commands.
        assert_eq!(f.pool.next_deadline(), Some(f.at(51_000)));
        let r = f.answer(5).unwrap();
        assert_eq!(
            (r.verdict.state, r.pr),
            (PathState::Up, Some(PrOutcome::Registered { keys: 2, hold: None }))
        );
        assert_eq!(
            f.pool
                .start(DOWN, f.dev.path(), BlockingCheck::Readsector0, after, now, T),
            None
        );
        let r = f.answer(6).unwrap();
        assert_eq!((r.verdict.state, r.pr), (PathState::Down, None));
        // A check answered elsewhere (directio) is registered on a worker too.
        let ghost = Verdict::new(PathState::Ghost, " reports path is ghost");
        let after = AfterCheck {
            prio: None,
            pr: Some(pr_job(2)),
        };
        assert_eq!(f.pool.start_after(3, ghost, Duration::ZERO, after, now, T), None);
        assert_eq!(
            f.answer(7).unwrap().pr,
            Some(PrOutcome::NotRegistered { cleared: false })
        );
    }

    fn up(path: PathId, took_ms: u64) -> Option<PoolResult> {
        Some(PoolResult {
            path,
            verdict: Verdict::new(PathState::Up, " reports path is up"),
            prio: None,
            pr: None,
            took: Duration::from_millis(took_ms),
        })
    }

    fn with_prio(r: Option<PoolResult>, prio: i32) -> Option<PoolResult> {
        r.map(|r| PoolResult { prio: Some(prio), ..r })
    }

    fn timeout(path: PathId, took_ms: u64) -> PoolResult {
        PoolResult {
            path,
            verdict: Verdict::new(PathState::Timeout, MSG_TIMEOUT),
            prio: None,
            pr: None,
            took: Duration::from_millis(took_ms),
        }
    }

    /// Upstream refreshes a usable path's priority at every check: the pool runs the
    /// prioritizer right after the check, on the same worker, and only then answers.
    #[test]
    fn priority_is_refreshed_after_a_usable_check_only() {
        let mut f = fixture(1, 4, &[1]);
        assert_eq!(f.start_with_prio(1, 0, 50), None);
        // Room for the check and the prioritizer's commands.
        assert_eq!(f.pool.next_deadline(), Some(f.at(21_000)));
        f.release.send(1).unwrap();
        assert_eq!(f.answer(30), with_prio(up(1, 30), 50));
        // A path the check found down keeps its old priority: none is reported.
        assert_eq!(f.start_with_prio(DOWN, 100, 10), None);
        let down = f.answer(101).unwrap();
        assert_eq!((down.verdict.state, down.prio), (PathState::Down, None));
    }

    /// A check answered elsewhere (directio, `none`) gets only its priority refreshed
    /// here; the time is the check's plus the refresh's.
    #[test]
    fn priority_only_job_carries_the_verdict_through() {
        let mut f = fixture(1, 1, &[]);
        let ghost = Verdict::new(PathState::Ghost, " reports path is ghost");
        let now = f.at(0);
        assert_eq!(
            f.pool
                .start_after(7, ghost.clone(), Duration::from_millis(3), prio_only(1), now, T),
            None
        );
        assert_eq!(f.pool.next_deadline(), Some(f.at(11_000)));
        // One job per path: a second refresh waits for the first.
        assert_eq!(
            f.pool
                .start_after(7, ghost.clone(), Duration::ZERO, prio_only(1), now, T),
            Some(Verdict::new(PathState::Pending, ""))
        );
        let r = f.answer(4).unwrap();
        assert_eq!((r.verdict, r.prio, r.took), (ghost, Some(1), Duration::from_millis(7)));
    }

    #[test]
    fn answer_before_deadline_and_one_check_per_path() {
        let mut f = fixture(1, 4, &[1]);
        assert_eq!(f.start(1, 0), None);
        // Asked again while running: pending, no second job.
        assert_eq!(f.start(1, 100), Some(Verdict::new(PathState::Pending, "")));
        assert_eq!(f.pool.next_deadline(), Some(f.at(11_000)));
        f.release.send(1).unwrap();
        assert_eq!(f.answer(1500), up(1, 1500));
        assert_eq!(f.pool.next_deadline(), None);
    }

    /// The lab defect: five hung LUNs x 2 paths on a pool of four workers made the
    /// checks of a healthy LUN wait behind them and time out. Each check gets a
    /// worker of its own now, and a healthy one answers whatever hangs.
    #[test]
    fn hung_checks_beyond_the_minimum_never_delay_a_healthy_path() {
        let hung: Vec<PathId> = (1..=10).collect();
        let mut f = fixture(4, MAX_WORKERS, &hung);
        for &p in &hung {
            assert_eq!(f.start(p, 0), None);
        }
        assert_eq!(f.pool.workers(), 10);
        for healthy in [11, 12] {
            assert_eq!(f.start(healthy, 50), None);
        }
        assert_eq!(f.pool.queued(), 0);
        let mut got = vec![f.answer(60), f.answer(60)];
        got.sort_by_key(|r| r.as_ref().map(|r| r.path));
        assert_eq!(got, vec![up(11, 10), up(12, 10)]);
        // The hung ones time out at their own deadline, once each, and the healthy
        // paths' next checks run on the two workers they freed.
        assert!(f.pool.poll(f.at(10_999)).is_empty());
        let mut expired = f.pool.poll(f.at(11_000));
        expired.sort_by_key(|r| r.path);
        assert_eq!(expired, hung.iter().map(|&p| timeout(p, 11_000)).collect::<Vec<_>>());
        assert_eq!(f.start(11, 12_000), None);
        assert_eq!(f.answer(12_001), up(11, 1));
        assert_eq!(f.pool.workers(), 12);
        // Still hung: their next checks say timeout without a job.
        assert_eq!(f.start(3, 12_000), Some(Verdict::new(PathState::Timeout, MSG_TIMEOUT)));
        assert_eq!(f.pool.workers(), 12);
    }

    /// With every worker stuck, a check waits, and its deadline starts only when a
    /// worker takes it: waiting is never reported as a timeout.
    #[test]
    fn deadline_starts_when_a_worker_takes_the_check() {
        // Path 2 also waits to be released: an answer it gave at once could reach the
        // `poll` below before the test looks.
        let mut f = fixture(1, 1, &[1, 2]);
        assert_eq!(f.start(1, 0), None);
        assert_eq!(f.start(2, 0), None);
        assert_eq!(f.pool.queued(), 1);
        assert_eq!(f.start(2, 500), Some(Verdict::new(PathState::Pending, "")));
        assert_eq!(f.pool.poll(f.at(30_000)), vec![timeout(1, 30_000)]);
        f.release.send(1).unwrap();
        // The late answer of path 1 is dropped; path 2 starts on the freed worker.
        assert_eq!(f.answer(40_000), None);
        assert_eq!(f.pool.queued(), 0);
        assert_eq!(f.pool.next_deadline(), Some(f.at(51_000)));
        assert!(f.pool.poll(f.at(40_000)).is_empty());
        f.release.send(2).unwrap();
        assert_eq!(f.answer(40_020), up(2, 20));
        // Path 1 can be checked again.
        assert_eq!(f.start(1, 41_000), None);
        f.release.send(1).unwrap();
        assert_eq!(f.answer(41_002), up(1, 2));
    }

    #[test]
    fn extra_workers_retire_after_staying_idle() {
        let mut f = fixture(2, 8, &[1, 2, 3, 4, 5]);
        for p in 1..=5 {
            assert_eq!(f.start(p, 0), None);
        }
        assert_eq!(f.pool.workers(), 5);
        for p in 1..=5 {
            f.release.send(p).unwrap();
        }
        for _ in 1..=5 {
            assert!(f.answer(1_000).is_some());
        }
        let retire = f.at(1_000) + RETIRE_AFTER;
        assert_eq!(f.pool.next_deadline(), Some(retire));
        f.pool.poll(retire - Duration::from_millis(1));
        assert_eq!(f.pool.workers(), 5);
        f.pool.poll(retire);
        assert_eq!(f.pool.workers(), 2);
        assert_eq!(f.pool.next_deadline(), None);
        // The minimum stays and still works.
        assert_eq!(f.start(9, 40_000), None);
        assert_eq!(f.answer(40_001), up(9, 1));
    }

    #[test]
    fn unopenable_device_is_down_without_a_job() {
        let mut f = fixture(1, 1, &[]);
        let v = f.pool.start(
            2,
            Path::new("/dev/mpd-missing"),
            BlockingCheck::Tur,
            AfterCheck::default(),
            f.t0,
            T,
        );
        assert_eq!(v, Some(Verdict::new(PathState::Down, MSG_DOWN)));
        assert_eq!(f.pool.next_deadline(), None);
    }
}
