//! Path checkers, the per-path check scheduler and the path state machine.
//!
//! * [`state`]: the pure path state machine the state owner runs on every
//!   [`CheckOutcome`] (DM messages, queueing, failback, `%T`/`%C` texts).
//! * [`scheduler`]: which paths are due, without touching idle ones.
//! * [`directio`], [`pool`] + [`sg`], [`sysfs`]: the checkers themselves.
//! * [`CheckerLoop`]: the thread that ties them together. It owns no path state:
//!   the state owner sends [`Control::Schedule`] with the delay the state machine
//!   chose (`PathUpdate::path.tick`), or only [`Control::Again`] with that delay when
//!   the path's request did not change, and gets a [`CheckOutcome`] per check.

pub mod directio;
pub mod pool;
pub mod scheduler;
pub mod sense;
pub mod sg;
pub mod state;
pub mod sysfs;

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, never, select};

use crate::aio::Waker;
use crate::discovery::prio::PrioJob;
use crate::persist::{PrJob, PrOutcome};
use directio::DirectioEngine;
use pool::{AfterCheck, BlockingCheck, BlockingPool};
use scheduler::{PathId, Scheduler};
use sense::MSG_UP;
use state::{PathState, Verdict};

/// The checkers this build implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CheckerKind {
    Tur,
    Directio,
    Readsector0,
    HpSw,
    Rdac,
    None,
}

impl CheckerKind {
    pub fn name(self) -> &'static str {
        match self {
            CheckerKind::Tur => "tur",
            CheckerKind::Directio => "directio",
            CheckerKind::Readsector0 => "readsector0",
            CheckerKind::HpSw => "hp_sw",
            CheckerKind::Rdac => "rdac",
            CheckerKind::None => "none",
        }
    }
}

/// The default checker (upstream `DEFAULT_CHECKER`).
pub const DEFAULT_CHECKER: CheckerKind = CheckerKind::Tur;

/// A `path_checker` value this build cannot honour; the path uses [`DEFAULT_CHECKER`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckerNameError {
    /// An upstream checker that is not built here ([`UPSTREAM_NOT_BUILT`]).
    NotBuilt(String),
    /// Not a checker name at all.
    Unknown(String),
}

/// Upstream's checkers this build does not implement.
pub const UPSTREAM_NOT_BUILT: &[&str] = &["emc_clariion", "cciss_tur"];

impl CheckerNameError {
    pub fn name(&self) -> &str {
        match self {
            CheckerNameError::NotBuilt(n) | CheckerNameError::Unknown(n) => n,
        }
    }

    /// What happens instead, in the words of [`crate::config::keywords::not_supported`].
    pub fn instead(&self) -> String {
        format!("{} is used instead", DEFAULT_CHECKER.name())
    }
}

/// `path_checker "<name>" is not supported by this multipathd, tur is used instead`: the
/// one wording of refusals (`config::keywords::not_supported`), without the place.
impl fmt::Display for CheckerNameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&crate::config::keywords::unsupported(
            &format!("path_checker \"{}\"", self.name()),
            &self.instead(),
        ))
    }
}

impl std::error::Error for CheckerNameError {}

/// Resolves a `path_checker` / `checker` value. The error says which checker is
/// used instead; the config layer warns about it at load (a name set in a file) and the
/// owner at path add (naming the path), and the path goes on with [`DEFAULT_CHECKER`].
pub fn checker_by_name(name: &str) -> Result<CheckerKind, CheckerNameError> {
    match name {
        "tur" => Ok(CheckerKind::Tur),
        "directio" => Ok(CheckerKind::Directio),
        "readsector0" => Ok(CheckerKind::Readsector0),
        "hp_sw" => Ok(CheckerKind::HpSw),
        "rdac" => Ok(CheckerKind::Rdac),
        "none" => Ok(CheckerKind::None),
        n if UPSTREAM_NOT_BUILT.contains(&n) => Err(CheckerNameError::NotBuilt(name.to_string())),
        _ => Err(CheckerNameError::Unknown(name.to_string())),
    }
}

/// What a path reaches its LUN through, shared with the LUN's other paths of the same
/// host: a SCSI host (an HBA port, an iSCSI session) or an NVMe controller. One fault
/// there (a link or a session down) takes all of its paths at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Link {
    ScsiHost(u32),
    NvmeController(u32),
}

impl fmt::Display for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Link::ScsiHost(n) => write!(f, "host{n}"),
            Link::NvmeController(n) => write!(f, "nvme{n}"),
        }
    }
}

/// How to check one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckRequest {
    pub path: PathId,
    /// Device node, e.g. `/dev/sdb`.
    pub dev: PathBuf,
    /// `/sys/block/<dev>/device/state`, read first; `None` skips that step.
    pub sysfs_state: Option<PathBuf>,
    /// When its device state is found down, the states of the link's other usable
    /// paths are read at once, not at their turn in the sweep.
    pub link: Option<Link>,
    pub kind: CheckerKind,
    /// `checker_timeout`.
    pub timeout: Duration,
    /// The path's prioritizer, run after every check that finds the path usable
    /// (on a worker, never on the state owner's thread).
    pub prio: Option<Arc<PrioJob>>,
    /// Register the map's reservation key through the path after the next check that
    /// finds it usable, before that verdict is reported. Taken by the loop when the
    /// check starts: the owner sends it again until it has the outcome.
    pub pr: Option<Arc<PrJob>>,
}

/// Messages from the state owner to the checker loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    /// Add or update a path; check it `in_secs` seconds from now.
    Schedule { req: CheckRequest, in_secs: u32 },
    /// Check a known path again `in_secs` seconds from now, with the request the loop
    /// has: what the state owner sends after an outcome that left the request as it was
    /// (no request built, sent and compared for every check of every path).
    Again { path: PathId, in_secs: u32 },
    /// Check a known path at once (CLI, uevent).
    CheckNow(PathId),
    /// The path is gone: forget it and close its device.
    Remove(PathId),
    /// End the loop.
    Shutdown,
}

/// One finished check, for [`state::update_path_state`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckOutcome {
    pub path_id: PathId,
    pub result: Verdict,
    /// The priority refreshed after this check (usable paths with a prioritizer).
    pub prio: Option<i32>,
    /// The registration the request asked for, when the path was usable.
    pub pr: Option<PrOutcome>,
    /// From the start of the check to its verdict (the priority refresh included).
    pub took: Duration,
}

/// Where the loop gets the time from (a fake in tests of the daemon).
pub trait Clock: Send {
    fn now(&self) -> Instant;
}

/// The monotonic clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct MonotonicClock;

impl Clock for MonotonicClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// Checks started per loop iteration at most, so control messages are served
/// between batches even when thousands of paths fall due together.
const MAX_STARTS_PER_ROUND: usize = 512;
/// Sleep cap when nothing is scheduled (control messages still wake the loop).
const IDLE_WAIT: Duration = Duration::from_secs(1);
/// AIO slots of the shared directio context.
const AIO_SLOTS: usize = 1024;
/// How often the sysfs device state of paths last seen usable is read between checks.
const SYSFS_SWEEP: Duration = Duration::from_secs(1);
/// Paths last seen usable whose state one sweep reads at most, in turn: each is read
/// every second up to this many, every 4 s at 1,024 paths, every 16 s at 4,096 (still
/// within the default max_polling_interval of 20 s; a link found down has all its paths
/// read at once, `sweep_links_down`). Each read costs a system call, and
/// under the lab's TCG reading every path every second was most of the checker loop's
/// CPU at 1,024 paths.
const SWEEP_READS: usize = 256;

/// The checker thread's state. [`CheckerLoop::run`] blocks until shutdown.
pub struct CheckerLoop<C: Clock> {
    clock: C,
    control: Receiver<Control>,
    results: Sender<CheckOutcome>,
    sched: Scheduler,
    paths: HashMap<PathId, CheckRequest>,
    /// Paths whose last verdict was usable: the sysfs sweep watches them, in id
    /// order from `sweep_after` on.
    watched: BTreeSet<PathId>,
    sweep_after: Option<PathId>,
    /// Links where a watched path was just found with its device down: the next round
    /// reads the state of every watched path of theirs.
    links_down: BTreeSet<Link>,
    /// Paths whose last verdict was their device's sysfs state (offline, transport
    /// offline): the sweep watches them for `running` again.
    offline: std::collections::HashSet<PathId>,
    /// The paths' state files (read before each check and by the sweep), kept open
    /// and read again at offset 0: under the lab's TCG an open's walk through the
    /// sysfs links cost about 0.2 ms, which made the sweep most of the idle daemon's
    /// CPU (5 % of a CPU at 256 paths). One
    /// descriptor a path, as upstream keeps one a path for its checker; the daemon
    /// raises its open-file limit at start as upstream does, and a file that cannot
    /// be opened is read by path as before.
    state_files: HashMap<PathId, File>,
    next_sweep: Instant,
    pool: BlockingPool,
    /// Started with the first directio check; the waker's channel wakes the loop
    /// when reads complete.
    directio: Option<(DirectioEngine, Waker)>,
}

/// Up to `n` members of `set` in id order after `after`, going round to the first:
/// the sweep's share of one second, so that every path gets its turn.
fn in_turn(set: &BTreeSet<PathId>, after: Option<PathId>, n: usize) -> Vec<PathId> {
    let (tail, head) = match after {
        Some(a) => (
            set.range((std::ops::Bound::Excluded(a), std::ops::Bound::Unbounded)),
            set.range(..=a),
        ),
        None => (set.range(..), set.range(0..0)),
    };
    tail.chain(head).take(n).copied().collect()
}

impl<C: Clock> CheckerLoop<C> {
    /// `workers` = threads kept for blocking SG_IO checks; more start when all are busy (checks due at once, or hung).
    pub fn new(
        control: Receiver<Control>,
        results: Sender<CheckOutcome>,
        clock: C,
        workers: usize,
    ) -> std::io::Result<Self> {
        let now = clock.now();
        let next_sweep = now + SYSFS_SWEEP;
        Ok(CheckerLoop {
            clock,
            control,
            results,
            sched: Scheduler::new(),
            paths: HashMap::new(),
            watched: BTreeSet::new(),
            sweep_after: None,
            links_down: BTreeSet::new(),
            offline: std::collections::HashSet::new(),
            state_files: HashMap::new(),
            next_sweep,
            pool: BlockingPool::new(workers, now)?,
            directio: None,
        })
    }

    fn send(
        &mut self,
        path_id: PathId,
        result: Verdict,
        prio: Option<i32>,
        pr: Option<PrOutcome>,
        took: Duration,
    ) -> bool {
        if result.state.is_usable() {
            self.watched.insert(path_id);
        } else if self.watched.remove(&path_id) && result.offline {
            self.link_down(path_id);
        }
        if result.offline {
            self.offline.insert(path_id);
        } else {
            self.offline.remove(&path_id);
        }
        self.results
            .send(CheckOutcome {
                path_id,
                result,
                prio,
                pr,
                took,
            })
            .is_ok()
    }

    /// A verdict reached off the pool (sysfs, `none`, directio): a usable path with
    /// a prioritizer or a registration to make has them run on a worker first, and
    /// the outcome goes out when that finishes.
    fn report(&mut self, id: PathId, verdict: Verdict, took: Duration, now: Instant) -> bool {
        let usable = matches!(verdict.state, PathState::Up | PathState::Ghost);
        let job = self.paths.get_mut(&id).filter(|_| usable).map(|r| {
            let after = AfterCheck {
                prio: r.prio.clone(),
                pr: r.pr.take(),
            };
            (after, r.timeout)
        });
        match job {
            Some((after, timeout)) if !after.is_empty() => {
                match self.pool.start_after(id, verdict, took, after, now, timeout) {
                    None => true,
                    Some(busy) => self.send(id, busy, None, None, took),
                }
            }
            _ => self.send(id, verdict, None, None, took),
        }
    }

    /// Between checks a steady path waits up to max_polling_interval, but the kernel
    /// marks a device it gave up on (SCSI error handling, FC dev_loss) in sysfs at
    /// once. Reading that word is cheap and does no IO, so it is read every second for
    /// the paths last seen usable; one that went down is checked now, not at its turn.
    /// So is a path found offline whose device runs again (a host's link back): its
    /// check may reinstate it at once rather than after up to a polling interval.
    fn sweep_sysfs(&mut self, now: Instant) {
        if now < self.next_sweep {
            return;
        }
        self.next_sweep = now + SYSFS_SWEEP;
        let turn = in_turn(&self.watched, self.sweep_after, SWEEP_READS);
        self.sweep_after = turn.last().copied().or(self.sweep_after);
        let (mut changed, down) = self.read_watched(&turn);
        for id in down {
            self.link_down(id);
        }
        for &id in &self.offline {
            let Some(file) = self.paths.get(&id).and_then(|r| r.sysfs_state.as_ref()) else {
                continue;
            };
            if sysfs::read_open_state(&mut self.state_files, id, file).is_none() {
                changed.push(id);
            }
        }
        self.check_now(changed, now);
    }

    /// Reads the device state of watched paths `ids`: those it took out of use (not a
    /// transient block), and of these the ones whose device is down.
    fn read_watched(&mut self, ids: &[PathId]) -> (Vec<PathId>, Vec<PathId>) {
        let (mut changed, mut down) = (Vec::new(), Vec::new());
        for &id in ids {
            let Some(file) = self.paths.get(&id).and_then(|r| r.sysfs_state.as_ref()) else {
                continue;
            };
            let verdict = sysfs::read_open_state(&mut self.state_files, id, file);
            if verdict.as_ref().is_some_and(|v| v.offline) {
                down.push(id);
            }
            if verdict.is_some_and(|v| !matches!(v.state, PathState::Pending)) {
                changed.push(id);
            }
        }
        (changed, down)
    }

    /// Checks `ids`, found changed by a sweep, at `now`.
    fn check_now(&mut self, ids: Vec<PathId>, now: Instant) {
        for id in ids {
            // Reported once: the next verdict decides whether it is watched again.
            self.watched.remove(&id);
            self.offline.remove(&id);
            self.sched.schedule(id, now);
        }
    }

    /// A watched path of `id`'s link was found with its device down.
    fn link_down(&mut self, id: PathId) {
        if let Some(link) = self.paths.get(&id).and_then(|r| r.link) {
            self.links_down.insert(link);
        }
    }

    /// A host whose link went down takes all of its paths at once, but the sweep finds
    /// them in turn (4 s at 1,024 paths, 16 s at 4,096) when their IO does not fail
    /// them first: so once one is found down, the state of every usable path of its
    /// link is read now, and those down are checked now.
    fn sweep_links_down(&mut self, now: Instant) {
        if self.links_down.is_empty() {
            return;
        }
        let links = std::mem::take(&mut self.links_down);
        let of_links: Vec<PathId> = self
            .watched
            .iter()
            .copied()
            .filter(|id| {
                self.paths
                    .get(id)
                    .and_then(|r| r.link)
                    .is_some_and(|l| links.contains(&l))
            })
            .collect();
        // (a path found down here is of a link already being read: it marks none again)
        let (changed, _) = self.read_watched(&of_links);
        let names: Vec<String> = links.iter().map(Link::to_string).collect();
        log::info!(
            "{}: a device found down, its other usable paths read: {} down too",
            names.join(", "),
            changed.len()
        );
        self.check_now(changed, now);
    }

    /// Starts one check; returns an immediate verdict if it completed synchronously.
    fn start(&mut self, id: PathId, now: Instant) -> Option<Verdict> {
        let req = self.paths.get(&id)?.clone();
        if let Some(file) = &req.sysfs_state
            && let Some(v) = sysfs::read_open_state(&mut self.state_files, id, file)
        {
            return Some(v);
        }
        match req.kind {
            CheckerKind::None => Some(Verdict::new(PathState::Up, MSG_UP)),
            CheckerKind::Tur => self.start_blocking(&req, BlockingCheck::Tur, now),
            CheckerKind::Readsector0 => self.start_blocking(&req, BlockingCheck::Readsector0, now),
            CheckerKind::HpSw => self.start_blocking(&req, BlockingCheck::HpSw, now),
            CheckerKind::Rdac => self.start_blocking(&req, BlockingCheck::Rdac, now),
            CheckerKind::Directio => {
                if self.directio.is_none() {
                    match DirectioEngine::new(AIO_SLOTS).and_then(|e| Ok((e.waker()?, e))) {
                        Ok((w, e)) => self.directio = Some((e, w)),
                        Err(e) => {
                            log::error!("directio checker: io_setup failed: {e}");
                            return Some(Verdict::new(PathState::Wild, " failed to initialize"));
                        }
                    }
                }
                self.directio.as_mut()?.0.start(id, &req.dev, now, req.timeout)
            }
        }
    }

    fn start_blocking(&mut self, req: &CheckRequest, check: BlockingCheck, now: Instant) -> Option<Verdict> {
        let after = AfterCheck {
            prio: req.prio.clone(),
            pr: req.pr.clone(),
        };
        let v = self.pool.start(req.path, &req.dev, check, after, now, req.timeout);
        if v.is_none()
            && let Some(r) = self.paths.get_mut(&req.path)
        {
            r.pr = None;
        }
        v
    }

    /// Applies a control message that arrived at `now`; false on shutdown.
    fn control(&mut self, msg: Control, now: Instant) -> bool {
        match msg {
            Control::Schedule { req, in_secs } => {
                let id = req.path;
                if let Some(old) = self.paths.insert(id, req.clone()) {
                    if old.sysfs_state != req.sysfs_state {
                        self.state_files.remove(&id);
                    }
                    if old.kind != req.kind || old.dev != req.dev {
                        // Another checker or device node: close what the old one held open.
                        self.pool.forget(id);
                        if let Some((d, _)) = self.directio.as_mut() {
                            d.forget(id);
                        }
                    }
                }
                self.sched.schedule_in(id, now, in_secs);
            }
            Control::Again { path, in_secs } => {
                if self.paths.contains_key(&path) {
                    self.sched.schedule_in(path, now, in_secs);
                }
            }
            Control::CheckNow(id) => {
                if self.paths.contains_key(&id) {
                    self.sched.schedule(id, now);
                }
            }
            Control::Remove(id) => {
                self.paths.remove(&id);
                self.watched.remove(&id);
                self.offline.remove(&id);
                self.state_files.remove(&id);
                self.sched.remove(id);
                self.pool.forget(id);
                if let Some((d, _)) = self.directio.as_mut() {
                    d.forget(id);
                }
            }
            Control::Shutdown => return false,
        }
        true
    }

    /// One round at `now`: start due checks, collect finished ones. False when the
    /// results receiver is gone.
    fn round(&mut self, now: Instant) -> bool {
        self.sweep_sysfs(now);
        self.sweep_links_down(now);
        for id in self.sched.take_due(now, MAX_STARTS_PER_ROUND) {
            if let Some(v) = self.start(id, now)
                && !self.report(id, v, Duration::ZERO, now)
            {
                return false;
            }
        }
        let direct = self.directio.as_mut().map(|(d, _)| d.poll(now)).unwrap_or_default();
        for r in direct {
            // A path removed meanwhile gets no result.
            if self.paths.contains_key(&r.path) && !self.report(r.path, r.verdict, r.took, now) {
                return false;
            }
        }
        for r in self.pool.poll(now) {
            if self.paths.contains_key(&r.path) && !self.send(r.path, r.verdict, r.prio, r.pr, r.took) {
                return false;
            }
        }
        true
    }

    /// How long to wait from `now` for the next deadline.
    fn wait_time(&mut self, now: Instant) -> Duration {
        if !self.links_down.is_empty() {
            return Duration::ZERO;
        }
        let sweep = (!self.watched.is_empty() || !self.offline.is_empty()).then_some(self.next_sweep);
        [
            self.sched.next_deadline(),
            self.pool.next_deadline(),
            self.directio.as_mut().and_then(|(d, _)| d.next_deadline()),
            sweep,
        ]
        .into_iter()
        .flatten()
        .min()
        .map_or(IDLE_WAIT, |t| t.saturating_duration_since(now).min(IDLE_WAIT))
    }

    /// Runs until [`Control::Shutdown`], or until either channel is closed.
    pub fn run(mut self) {
        loop {
            // One clock read for the round and the wait after it (a system call under the
            // lab's TCG): the wait may end late by the round's time, a few milliseconds.
            let now = self.clock.now();
            if !self.round(now) {
                return;
            }
            let wait = self.wait_time(now);
            let done_rx = self.pool.done_channel().clone();
            // Completions are reaped by the next round.
            let aio_rx = self.directio.as_ref().map_or_else(never, |(_, w)| w.receiver().clone());
            select! {
                recv(self.control) -> msg => match msg {
                    Ok(m) => {
                        let now = self.clock.now();
                        if !self.control(m, now) {
                            return;
                        }
                        // Drain what else is queued before the next round, as arrived now.
                        while let Ok(m) = self.control.try_recv() {
                            if !self.control(m, now) {
                                return;
                            }
                        }
                    }
                    Err(_) => return,
                },
                recv(done_rx) -> d => {
                    if let Ok(d) = d {
                        let now = self.clock.now();
                        if let Some(r) = self.pool.finish(d, now)
                            && self.paths.contains_key(&r.path)
                            && !self.send(r.path, r.verdict, r.prio, r.pr, r.took)
                        {
                            return;
                        }
                    }
                },
                recv(aio_rx) -> _ => {},
                default(wait) => {}
            }
        }
    }
}

/// Starts the checker thread. Results arrive on `tx_results`; send
/// [`Control::Schedule`] for every path (again after each outcome, with the
/// state machine's next-check delay, or [`Control::Again`] when the request is
/// the same) and [`Control::Shutdown`] to stop.
pub fn spawn_checker_loop<C: Clock + 'static>(
    rx_control: Receiver<Control>,
    tx_results: Sender<CheckOutcome>,
    clock: C,
    workers: usize,
) -> std::io::Result<JoinHandle<()>> {
    let lp = CheckerLoop::new(rx_control, tx_results, clock, workers)?;
    std::thread::Builder::new()
        .name("checkerloop".to_string())
        .spawn(move || lp.run())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sweep_reads_its_share_in_turn_and_comes_round() {
        let set: BTreeSet<PathId> = (1..=10).collect();
        assert_eq!(in_turn(&set, None, 4), [1, 2, 3, 4]);
        assert_eq!(in_turn(&set, Some(4), 4), [5, 6, 7, 8]);
        assert_eq!(in_turn(&set, Some(8), 4), [9, 10, 1, 2]);
        // A share as large as the set reads each once; the last read may be gone.
        assert_eq!(in_turn(&set, Some(3), 20), [4, 5, 6, 7, 8, 9, 10, 1, 2, 3]);
        let gone: BTreeSet<PathId> = [1, 2, 5, 9].into();
        assert_eq!(in_turn(&gone, Some(4), 3), [5, 9, 1]);
        assert!(in_turn(&BTreeSet::new(), Some(4), 3).is_empty());
    }

    #[test]
    fn checker_names() {
        assert_eq!(checker_by_name("tur"), Ok(CheckerKind::Tur));
        assert_eq!(checker_by_name("directio"), Ok(CheckerKind::Directio));
        assert_eq!(checker_by_name("readsector0"), Ok(CheckerKind::Readsector0));
        assert_eq!(checker_by_name("none"), Ok(CheckerKind::None));
        for n in ["emc_clariion", "cciss_tur"] {
            let e = checker_by_name(n).unwrap_err();
            assert_eq!(e, CheckerNameError::NotBuilt(n.into()));
            assert_eq!(
                e.to_string(),
                format!("path_checker \"{n}\" is not supported by this multipathd, tur is used instead")
            );
        }
        assert_eq!(
            checker_by_name("bogus").unwrap_err().to_string(),
            "path_checker \"bogus\" is not supported by this multipathd, tur is used instead"
        );
        for k in [
            CheckerKind::Tur,
            CheckerKind::Directio,
            CheckerKind::Readsector0,
            CheckerKind::HpSw,
            CheckerKind::Rdac,
            CheckerKind::None,
        ] {
            assert_eq!(checker_by_name(k.name()), Ok(k));
        }
    }
}
