//! The `directio` checker: one O_DIRECT block read at offset 0 through kernel AIO.
//!
//! All directio paths share one AIO context. Checks started in a tick are submitted
//! together with one `io_submit`, completions are reaped with one non-blocking
//! `io_getevents` per loop iteration, and device files stay open between checks,
//! so a tick costs a few syscalls however many paths it checks.
//!
//! A read that outlives `checker_timeout` is reported as `i/o timeout`; its buffer
//! stays owned here until the kernel completes it, and no new read is issued for
//! that path meanwhile (each later check reports the timeout again).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::aio::{AioContext, AlignedBuf, IoEvent, Iocb};

use super::scheduler::PathId;
use super::sense::{MSG_DOWN, MSG_TIMEOUT, MSG_UP};
use super::state::{PathState, Verdict};

nix::ioctl_read_bad!(blkbszget, 0x8008_1270u32, libc::size_t);

/// O_DIRECT needs the buffer aligned to the logical block size; a page covers all.
const BUF_ALIGN: usize = 4096;
/// Events reaped per `io_getevents` call.
const REAP_BATCH: usize = 64;

struct Open {
    dev: PathBuf,
    file: Arc<File>,
    blksize: usize,
}

struct Inflight {
    path: PathId,
    // Boxed so the address handed to the kernel stays put while the map rehashes.
    iocb: Box<Iocb>,
    // Kept alive until the kernel completes the read (the kernel writes into it).
    _buf: AlignedBuf,
    _file: Arc<File>,
    started: Instant,
    blksize: usize,
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

/// Shared AIO engine for every directio path.
pub struct DirectioEngine {
    ctx: AioContext,
    open: HashMap<PathId, Open>,
    inflight: HashMap<u64, Inflight>,
    by_path: HashMap<PathId, u64>,
    /// Tokens started but not yet accepted by `io_submit`, oldest first.
    queued: Vec<u64>,
    /// Reads the kernel holds (submitted, not reaped).
    submitted: usize,
    /// Deadlines by token; entries of finished reads are skipped when popped.
    deadlines: BinaryHeap<Reverse<(Instant, u64)>>,
    next_token: u64,
}

fn block_size(f: &File) -> usize {
    let mut bs: libc::size_t = 0;
    // SAFETY: BLKBSZGET writes one size_t.
    if let Ok(_) = unsafe { blkbszget(f.as_raw_fd(), &mut bs) }
        && bs > 0
    {
        return bs;
    }
    // Not a block device (tests on files): the file system's preferred IO size.
    match nix::sys::stat::fstat(f) {
        Ok(st) if st.st_blksize > 0 => st.st_blksize as usize,
        _ => 512,
    }
}

impl DirectioEngine {
    /// One AIO context with room for `capacity` reads in flight.
    pub fn new(capacity: usize) -> io::Result<DirectioEngine> {
        Ok(DirectioEngine {
            ctx: AioContext::new(capacity)?,
            open: HashMap::new(),
            inflight: HashMap::new(),
            by_path: HashMap::new(),
            queued: Vec::new(),
            submitted: 0,
            deadlines: BinaryHeap::new(),
            next_token: 1,
        })
    }

    /// Reads in flight, timed-out ones included.
    pub fn in_flight(&self) -> usize {
        self.inflight.len()
    }

    /// The earliest deadline of a read not yet reported, for the loop's sleep.
    pub fn next_deadline(&mut self) -> Option<Instant> {
        while let Some(Reverse((at, token))) = self.deadlines.peek().copied() {
            if self.inflight.get(&token).is_some_and(|i| !i.timed_out) {
                return Some(at);
            }
            self.deadlines.pop();
        }
        None
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
                let file = std::fs::OpenOptions::new()
                    .read(true)
                    .custom_flags(libc::O_DIRECT)
                    .open(dev)?;
                let blksize = block_size(&file);
                Ok(v.insert(Open { dev: dev.to_path_buf(), file: Arc::new(file), blksize }))
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
        let (file, blksize) = match self.open_dev(path, dev) {
            Ok(o) => (Arc::clone(&o.file), o.blksize),
            Err(e) => {
                log::debug!("directio: cannot open {}: {e}", dev.display());
                return Some(Verdict::new(PathState::Down, MSG_DOWN));
            }
        };
        let token = self.next_token;
        self.next_token += 1;
        let mut buf = AlignedBuf::new(blksize, BUF_ALIGN.max(blksize));
        let iocb = Box::new(Iocb::pread(file.as_raw_fd(), buf.as_mut_ptr(), blksize, 0, token));
        self.inflight.insert(
            token,
            Inflight {
                path,
                iocb,
                _buf: buf,
                _file: file,
                started: now,
                blksize,
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
        let mut tokens = std::mem::take(&mut self.queued);
        let mut ptrs: Vec<*mut Iocb> = tokens
            .iter()
            .filter_map(|t| self.inflight.get_mut(t).map(|i| &mut *i.iocb as *mut Iocb))
            .collect();
        tokens.retain(|t| self.inflight.contains_key(t));
        let mut done = 0;
        while done < ptrs.len() {
            // SAFETY: each iocb and its buffer and file live in `self.inflight`
            // until their completion event is reaped.
            match unsafe { self.ctx.submit(&ptrs[done..]) } {
                Ok(0) => break,
                Ok(n) => {
                    for t in &tokens[done..done + n] {
                        if let Some(i) = self.inflight.get_mut(t) {
                            i.submitted = true;
                        }
                    }
                    self.submitted += n;
                    done += n;
                }
                // The AIO ring is full: keep the rest queued for the next poll.
                Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => break,
                Err(e) => {
                    // The first remaining iocb was refused: report it, go on with the rest.
                    let token = tokens.remove(done);
                    ptrs.remove(done);
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

    fn complete(&mut self, ev: &IoEvent, now: Instant, out: &mut Vec<DirectioResult>) {
        let Some(i) = self.inflight.remove(&ev.data) else { return };
        self.submitted = self.submitted.saturating_sub(1);
        if self.by_path.get(&i.path) == Some(&ev.data) {
            self.by_path.remove(&i.path);
        }
        if i.timed_out {
            return;
        }
        let verdict = if ev.res == i.blksize as i64 {
            Verdict::new(PathState::Up, MSG_UP)
        } else {
            log::debug!("directio: path {} read returned {}", i.path, ev.res);
            Verdict::new(PathState::Down, MSG_DOWN)
        };
        out.push(DirectioResult { path: i.path, verdict, took: now.saturating_duration_since(i.started) });
    }

    /// Submits queued reads, reaps completions without blocking and reports reads
    /// past their deadline as timed out.
    pub fn poll(&mut self, now: Instant) -> Vec<DirectioResult> {
        let mut out = Vec::new();
        self.submit_queued(&mut out, now);
        let mut events = [IoEvent::default(); REAP_BATCH];
        while self.submitted > 0 {
            let n = match self.ctx.get_events(0, &mut events, Duration::ZERO) {
                Ok(n) => n,
                Err(e) => {
                    log::warn!("directio: io_getevents: {e}");
                    break;
                }
            };
            for ev in &events[..n] {
                self.complete(ev, now, &mut out);
            }
            if n < REAP_BATCH {
                break;
            }
        }
        while let Some(Reverse((at, token))) = self.deadlines.peek().copied() {
            if at > now {
                break;
            }
            self.deadlines.pop();
            let Some(i) = self.inflight.get_mut(&token) else { continue };
            if i.timed_out {
                continue;
            }
            let took = now.saturating_duration_since(i.started);
            let path = i.path;
            if i.submitted {
                i.timed_out = true;
                // Block-device reads are usually not cancellable; the completion
                // is still awaited before the buffer is freed.
                // SAFETY: the iocb was submitted to this context and is not reaped.
                let _ = unsafe { self.ctx.cancel(&mut *i.iocb) };
            } else {
                // Never reached the kernel (ring full all along): drop it.
                self.inflight.remove(&token);
                self.queued.retain(|t| *t != token);
                self.by_path.remove(&path);
            }
            out.push(DirectioResult { path, verdict: Verdict::new(PathState::Timeout, MSG_TIMEOUT), took });
        }
        out
    }
}

impl Drop for DirectioEngine {
    fn drop(&mut self) {
        // The AIO context drop waits for in-flight reads, but it is declared first
        // and so dropped after the buffers: wait for them here instead.
        let mut events = [IoEvent::default(); REAP_BATCH];
        let mut spins = 0;
        while self.submitted > 0 && spins < 100 {
            match self.ctx.get_events(1, &mut events, Duration::from_millis(100)) {
                Ok(n) => {
                    for ev in &events[..n] {
                        if self.inflight.remove(&ev.data).is_some() {
                            self.submitted = self.submitted.saturating_sub(1);
                        }
                    }
                }
                Err(_) => break,
            }
            spins += 1;
        }
        // Reads the kernel still holds after 10 s: leak their buffers rather than
        // let the kernel write into freed memory.
        for (_, i) in self.inflight.drain() {
            if i.submitted {
                std::mem::forget(i);
            }
        }
    }
}
