//! The `directio` checker: one O_DIRECT block read at offset 0 through kernel AIO.
//!
//! All directio paths share one ring of the [`aio::Engine`]. Checks started in a tick
//! are submitted together with one `io_submit`, completions are reaped with one
//! non-blocking `io_getevents` when the engine's eventfd says some landed (see
//! [`DirectioEngine::waker`]), and device files stay open between checks, so a tick
//! costs a few syscalls however many paths it checks.
//!
//! A read that outlives `checker_timeout` is reported as `i/o timeout`; the engine
//! keeps its buffer until the kernel completes it, and no new read is issued for
//! that path meanwhile (each later check reports the timeout again).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::aio::{self, Device, RingId};

use super::scheduler::PathId;
use super::sense::{MSG_DOWN, MSG_TIMEOUT, MSG_UP};
use super::state::{PathState, Verdict};

/// When `io_submit` refuses for lack of kernel memory with no read in flight, no
/// completion will wake the loop: retry this much later.
const SUBMIT_RETRY: Duration = Duration::from_millis(10);

struct Open {
    dev: PathBuf,
    device: Device,
}

struct Inflight {
    path: PathId,
    device: Device,
    started: Instant,
    submitted: bool,
    timed_out: bool,
}

/// A finished directio check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectioResult {
    pub path: PathId,
    pub verdict: Verdict,
    pub took: Duration,
}

/// The directio checks of every path, over one engine ring. A read's token is its
/// slot in the ring.
pub struct DirectioEngine {
    aio: aio::Engine,
    ring: RingId,
    open: HashMap<PathId, Open>,
    inflight: HashMap<u64, Inflight>,
    by_path: HashMap<PathId, u64>,
    /// Tokens started but not yet accepted by `io_submit`, oldest first.
    queued: Vec<u64>,
    /// Deadlines by token; entries of finished reads are skipped when popped.
    deadlines: BinaryHeap<Reverse<(Instant, u64)>>,
    next_token: u64,
    retry_at: Option<Instant>,
    reaped: Vec<aio::Done>,
}

impl DirectioEngine {
    /// One engine ring with room for `capacity` reads in flight.
    pub fn new(capacity: usize) -> io::Result<DirectioEngine> {
        let mut aio = aio::Engine::new()?;
        let ring = aio.add_ring(capacity)?;
        Ok(DirectioEngine {
            aio,
            ring,
            open: HashMap::new(),
            inflight: HashMap::new(),
            by_path: HashMap::new(),
            queued: Vec::new(),
            deadlines: BinaryHeap::new(),
            next_token: 1,
            retry_at: None,
            reaped: Vec::new(),
        })
    }

    /// A waker whose channel yields after completions: [`poll`](Self::poll) then.
    pub fn waker(&self) -> io::Result<aio::Waker> {
        self.aio.waker()
    }

    /// Reads in flight, timed-out ones included.
    pub fn in_flight(&self) -> usize {
        self.inflight.len()
    }

    /// The earliest deadline of a read not yet reported (or of a submit retry), for
    /// the loop's sleep.
    pub fn next_deadline(&mut self) -> Option<Instant> {
        while let Some(Reverse((at, token))) = self.deadlines.peek().copied() {
            if self.inflight.get(&token).is_some_and(|i| !i.timed_out) {
                return Some(self.retry_at.map_or(at, |r| r.min(at)));
            }
            self.deadlines.pop();
        }
        self.retry_at
    }

    /// Closes the device of a removed path (an unfinished read keeps it open).
    pub fn forget(&mut self, path: PathId) {
        self.open.remove(&path);
    }

    fn open_dev(&mut self, path: PathId, dev: &Path) -> io::Result<&Open> {
        let stale = self.open.get(&path).is_some_and(|o| o.dev != dev);
        if stale {
            self.open.remove(&path);
        }
        match self.open.entry(path) {
            std::collections::hash_map::Entry::Occupied(o) => Ok(o.into_mut()),
            std::collections::hash_map::Entry::Vacant(v) => {
                let device = Device::open(dev)?;
                Ok(v.insert(Open {
                    dev: dev.to_path_buf(),
                    device,
                }))
            }
        }
    }

    /// Queues a check of `path` on device node `dev`; it is submitted by the next
    /// [`poll`](Self::poll). Returns a verdict right away when no read can be
    /// issued: the device cannot be opened, or the previous read is still stuck.
    pub fn start(&mut self, path: PathId, dev: &Path, now: Instant, timeout: Duration) -> Option<Verdict> {
        if let Some(token) = self.by_path.get(&path)
            && let Some(prev) = self.inflight.get(token)
        {
            return Some(if prev.timed_out {
                Verdict::new(PathState::Timeout, MSG_TIMEOUT)
            } else {
                // Asked again before the last read finished: let it finish.
                Verdict::new(PathState::Pending, "")
            });
        }
        let device = match self.open_dev(path, dev) {
            Ok(o) => o.device.clone(),
            Err(e) => {
                log::debug!("directio: cannot open {}: {e}", dev.display());
                return Some(Verdict::new(PathState::Down, MSG_DOWN));
            }
        };
        let token = self.next_token;
        self.next_token += 1;
        self.inflight.insert(
            token,
            Inflight {
                path,
                device,
                started: now,
                submitted: false,
                timed_out: false,
            },
        );
        self.by_path.insert(path, token);
        self.queued.push(token);
        self.deadlines.push(Reverse((now + timeout, token)));
        None
    }

    fn submit_queued(&mut self, out: &mut Vec<DirectioResult>, now: Instant) {
        self.retry_at = None;
        let mut tokens = std::mem::take(&mut self.queued);
        tokens.retain(|t| self.inflight.contains_key(t));
        let mut done = 0;
        while done < tokens.len() {
            let reads: Vec<(&Device, u64)> = tokens[done..].iter().map(|t| (&self.inflight[t].device, *t)).collect();
            match self.aio.submit(self.ring, &reads) {
                // The AIO ring is full: keep the rest queued for the next poll.
                Ok(0) => break,
                Ok(n) => {
                    for t in &tokens[done..done + n] {
                        if let Some(i) = self.inflight.get_mut(t) {
                            i.submitted = true;
                        }
                    }
                    done += n;
                }
                Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => {
                    if self.aio.in_flight() == 0 {
                        self.retry_at = Some(now + SUBMIT_RETRY);
                    }
                    break;
                }
                Err(e) => {
                    // The first remaining read was refused: report it, go on with the rest.
                    let token = tokens.remove(done);
                    if let Some(i) = self.inflight.remove(&token) {
                        self.by_path.remove(&i.path);
                        log::debug!("directio: io_submit for path {}: {e}", i.path);
                        out.push(DirectioResult {
                            path: i.path,
                            verdict: Verdict::new(PathState::Down, MSG_DOWN),
                            took: now.saturating_duration_since(i.started),
                        });
                    }
                }
            }
        }
        self.queued = tokens.split_off(done);
    }

    fn complete(&mut self, token: u64, res: i64, now: Instant, out: &mut Vec<DirectioResult>) {
        let Some(i) = self.inflight.remove(&token) else { return };
        if self.by_path.get(&i.path) == Some(&token) {
            self.by_path.remove(&i.path);
        }
        if i.timed_out {
            return;
        }
        let verdict = if res == i.device.block_size() as i64 {
            Verdict::new(PathState::Up, MSG_UP)
        } else {
            log::debug!("directio: path {} read returned {}", i.path, res);
            Verdict::new(PathState::Down, MSG_DOWN)
        };
        out.push(DirectioResult {
            path: i.path,
            verdict,
            took: now.saturating_duration_since(i.started),
        });
    }

    /// Submits queued reads, reaps completions without blocking and reports reads
    /// past their deadline as timed out.
    pub fn poll(&mut self, now: Instant) -> Vec<DirectioResult> {
        let mut out = Vec::new();
        self.submit_queued(&mut out, now);
        let mut reaped = std::mem::take(&mut self.reaped);
        if let Err(e) = self.aio.reap(&mut reaped) {
            log::warn!("directio: io_getevents: {e}");
        }
        for d in reaped.drain(..) {
            self.complete(d.slot, d.res, now, &mut out);
        }
        self.reaped = reaped;
        while let Some(Reverse((at, token))) = self.deadlines.peek().copied() {
            if at > now {
                break;
            }
            self.deadlines.pop();
            let Some(i) = self.inflight.get_mut(&token) else {
                continue;
            };
            if i.timed_out {
                continue;
            }
            let took = now.saturating_duration_since(i.started);
            let path = i.path;
            if i.submitted {
                i.timed_out = true;
                // Block-device reads are usually not cancellable: the engine keeps the
                // buffer until the completion, swallowed then. A read that did end
                // here is released now.
                if self.aio.cancel(self.ring, token).is_ok() {
                    self.inflight.remove(&token);
                    self.by_path.remove(&path);
                }
            } else {
                // Never reached the kernel (ring full all along): drop it.
                self.inflight.remove(&token);
                self.queued.retain(|t| *t != token);
                self.by_path.remove(&path);
            }
            out.push(DirectioResult {
                path,
                verdict: Verdict::new(PathState::Timeout, MSG_TIMEOUT),
                took,
            });
        }
        out
    }
}
