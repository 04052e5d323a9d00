//! The sampler: keeps up to 32 one-block direct reads in flight per tested path,
//! re-sent at 10 Hz, and counts the bad ones. Pure bookkeeping over an [`IoEngine`]
//! with the time passed in, so tests drive it with a fake clock and a fake engine.
//!
//! A read is bad when it fails, comes back short, takes longer than the optional
//! latency bound, or is still in flight after the IO timeout (60 s). A stuck read is
//! counted once, cancelled (best effort) and its slot stays busy until the kernel
//! returns it, so its buffer is never reused or freed while the device may write it.
//!
//! A path that hangs must be judged by the time it could not serve IO, not by the
//! few reads it swallowed: a hung read holds its slot, so no new read goes out there.
//! Every 10 Hz send tick therefore counts, for each slot whose read has been in
//! flight for [`HUNG_AFTER`] or longer, one read that could not be sent, as sent and
//! failed (`blocked`). A path that hangs for a fraction of the sending window scores
//! about that fraction; a healthy path, whose reads come back within milliseconds,
//! never has a blocked slot.

use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::config::MIN_SAMPLE_TIME;
use super::engine::{Completion, IoEngine, PathKey};

/// Reads kept in flight per tested path.
pub const CONCUR_NR_EVENT: usize = 32;
/// A read in flight this long is counted as an error and cancelled.
pub const IO_TIMEOUT: Duration = Duration::from_secs(60);
/// Free slots are refilled at this period (10 Hz).
pub const RESUBMIT_PERIOD: Duration = Duration::from_millis(100);
/// A read in flight this long blocks its slot: each send tick counts it as a read
/// that could not be sent. Far above a working SAN path's read latency.
pub const HUNG_AFTER: Duration = Duration::from_secs(1);

/// How long a path is sampled, and after how long a read counts as stuck.
///
/// Users get at least 120 s (two IO timeouts) through [`SampleTime::from_config`];
/// only tests shorten both, through [`SampleTime::shortened_for_tests`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SampleTime {
    sample: Duration,
    io_timeout: Duration,
}

impl SampleTime {
    /// From `marginal_path_err_sample_time` seconds; values below 120 become 120 (the
    /// config layer already reported them).
    pub fn from_config(secs: u32) -> SampleTime {
        SampleTime {
            sample: Duration::from_secs(u64::from(secs.max(MIN_SAMPLE_TIME))),
            io_timeout: IO_TIMEOUT,
        }
    }

    /// Test-only: any sample time and IO timeout (the timeout scales with the sample
    /// time so that reads are still sent for `sample - io_timeout`). Not reachable from
    /// the configuration.
    #[doc(hidden)]
    pub fn shortened_for_tests(sample: Duration, io_timeout: Duration) -> SampleTime {
        SampleTime { sample, io_timeout }
    }

    pub fn sample(&self) -> Duration {
        self.sample
    }
}

/// A test to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestSpec {
    /// Path name (`sdb`), used in reports.
    pub path: String,
    /// Device node to read (`/dev/sdb`).
    pub dev_node: PathBuf,
    pub sample_time: SampleTime,
    /// Extension: reads slower than this count as errors.
    pub latency_bound: Option<Duration>,
}

impl TestSpec {
    /// The test an [`super::Action::EnqueueTest`] asks for; the device node is
    /// `/dev/<path>` as upstream opens it.
    pub fn from_enqueue(path: &str, sample_time: u32, latency_bound_ms: Option<u32>) -> TestSpec {
        TestSpec {
            path: path.to_string(),
            dev_node: PathBuf::from("/dev").join(path),
            sample_time: SampleTime::from_config(sample_time),
            latency_bound: latency_bound_ms.map(|ms| Duration::from_millis(u64::from(ms))),
        }
    }
}

/// Counts of one test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    /// Reads sent.
    pub ios: u64,
    /// Bad reads (sum of the five kinds below).
    pub errs: u64,
    /// Completed with an error.
    pub failed: u64,
    /// Completed with fewer bytes than a block.
    pub short: u64,
    /// Completed, but slower than the latency bound.
    pub slow: u64,
    /// Still in flight after the IO timeout.
    pub stuck: u64,
    /// Reads that could not be sent because a hanging read held the slot (one per
    /// slot and send tick, see the module doc).
    pub blocked: u64,
}

/// A test's final or intermediate counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub path: String,
    pub counts: Counts,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Free,
    InFlight(Instant),
    /// Counted as stuck; waiting for the kernel to hand it back.
    Abandoned,
}

#[derive(Debug)]
struct Tested {
    spec: TestSpec,
    blksize: usize,
    started: Instant,
    slots: Vec<Slot>,
    counts: Counts,
}

/// All running tests. Owned by the io-err-stat thread.
#[derive(Debug, Default)]
pub struct Sampler {
    tests: BTreeMap<PathKey, Tested>,
}

impl Sampler {
    pub fn new() -> Sampler {
        Sampler::default()
    }

    pub fn is_empty(&self) -> bool {
        self.tests.is_empty()
    }

    /// Starts testing `spec.path` (no-op if already under test) and sends its first reads.
    pub fn start<E: IoEngine + ?Sized>(&mut self, eng: &mut E, spec: TestSpec, now: Instant) -> io::Result<()> {
        if self.tests.values().any(|t| t.spec.path == spec.path) {
            return Ok(());
        }
        let (key, blksize) = eng.open(&spec.dev_node, CONCUR_NR_EVENT)?;
        let t = Tested {
            spec,
            blksize,
            started: now,
            slots: vec![Slot::Free; CONCUR_NR_EVENT],
            counts: Counts::default(),
        };
        self.tests.insert(key, t);
        self.send_one(eng, key, now);
        Ok(())
    }

    /// Drops the test of `path`; its reads in flight are cancelled and left to the
    /// engine to reap. Returns whether there was one.
    pub fn cancel<E: IoEngine + ?Sized>(&mut self, eng: &mut E, path: &str) -> bool {
        let Some(key) = self.tests.iter().find(|(_, t)| t.spec.path == path).map(|(k, _)| *k) else {
            return false;
        };
        if let Some(t) = self.tests.remove(&key) {
            for (slot, s) in t.slots.iter().enumerate() {
                if matches!(s, Slot::InFlight(_) | Slot::Abandoned) {
                    eng.cancel(key, slot);
                }
            }
        }
        eng.close(key);
        true
    }

    /// Refills the free slots of every path still in its sending window.
    pub fn send<E: IoEngine + ?Sized>(&mut self, eng: &mut E, now: Instant) {
        let keys: Vec<PathKey> = self.tests.keys().copied().collect();
        for key in keys {
            self.send_one(eng, key, now);
        }
    }

    fn send_one<E: IoEngine + ?Sized>(&mut self, eng: &mut E, key: PathKey, now: Instant) {
        let Some(t) = self.tests.get_mut(&key) else {
            return;
        };
        // Leave every read sent the full IO timeout to complete before the verdict.
        let st = t.spec.sample_time;
        if now.saturating_duration_since(t.started) + st.io_timeout >= st.sample {
            return;
        }
        let hung_after = HUNG_AFTER.min(st.io_timeout);
        let blocked = t
            .slots
            .iter()
            .filter(|s| match s {
                Slot::InFlight(sent) => now.saturating_duration_since(*sent) >= hung_after,
                Slot::Abandoned => true,
                Slot::Free => false,
            })
            .count() as u64;
        t.counts.ios += blocked;
        t.counts.errs += blocked;
        t.counts.blocked += blocked;
        let free: Vec<usize> = (0..t.slots.len()).filter(|&i| t.slots[i] == Slot::Free).collect();
        match eng.submit(key, &free) {
            Ok(n) => {
                for &i in &free[..n.min(free.len())] {
                    t.slots[i] = Slot::InFlight(now);
                }
                t.counts.ios += n as u64;
            }
            // Not a path error: the kernel refused to queue (EAGAIN, ...). Retry next tick.
            Err(e) => log::debug!("io error statistic: {}: io_submit error {e}", t.spec.path),
        }
    }

    /// Accounts reaped completions; `now` is when they were reaped.
    pub fn account(&mut self, done: &[Completion], now: Instant) {
        for c in done {
            let Some(t) = self.tests.get_mut(&c.key) else {
                continue;
            };
            let Some(slot) = t.slots.get_mut(c.slot) else {
                continue;
            };
            let prev = std::mem::replace(slot, Slot::Free);
            let Slot::InFlight(sent) = prev else {
                // An abandoned read coming home was counted when it got stuck.
                continue;
            };
            if c.res < 0 {
                t.counts.failed += 1;
            } else if c.res != t.blksize as i64 {
                t.counts.short += 1;
            } else if t
                .spec
                .latency_bound
                .is_some_and(|b| now.saturating_duration_since(sent) > b)
            {
                t.counts.slow += 1;
            } else {
                continue;
            }
            t.counts.errs += 1;
        }
    }

    /// Counts reads in flight for the IO timeout or longer (once each) and cancels them.
    pub fn expire<E: IoEngine + ?Sized>(&mut self, eng: &mut E, now: Instant) {
        for (&key, t) in self.tests.iter_mut() {
            for (i, s) in t.slots.iter_mut().enumerate() {
                if let Slot::InFlight(sent) = *s
                    && now.saturating_duration_since(sent) >= t.spec.sample_time.io_timeout
                {
                    log::debug!("io error statistic: {}: abort check on timeout", t.spec.path);
                    *s = Slot::Abandoned;
                    t.counts.stuck += 1;
                    t.counts.errs += 1;
                    eng.cancel(key, i);
                }
            }
        }
    }

    /// Ends the tests whose sample time is over and returns their final counts.
    pub fn finish<E: IoEngine + ?Sized>(&mut self, eng: &mut E, now: Instant) -> Vec<Report> {
        self.expire(eng, now);
        let done: Vec<PathKey> = self
            .tests
            .iter()
            .filter(|(_, t)| now.saturating_duration_since(t.started) >= t.spec.sample_time.sample)
            .map(|(k, _)| *k)
            .collect();
        let mut out = Vec::new();
        for key in done {
            if let Some(t) = self.tests.remove(&key) {
                log::debug!("io error statistic: {}: check end", t.spec.path);
                out.push(Report {
                    path: t.spec.path,
                    counts: t.counts,
                });
            }
            eng.close(key);
        }
        out
    }

    /// Live counts of every running test.
    pub fn progress(&self) -> Vec<Report> {
        self.tests
            .values()
            .map(|t| Report {
                path: t.spec.path.clone(),
                counts: t.counts,
            })
            .collect()
    }

    /// One 100 ms cycle for a fake-clock driver: reap once (no wait), account, end the
    /// finished tests, refill. The io-err-stat thread does the same with a waiting reap.
    pub fn cycle<E: IoEngine + ?Sized>(
        &mut self,
        eng: &mut E,
        now: Instant,
        buf: &mut Vec<Completion>,
    ) -> io::Result<Vec<Report>> {
        buf.clear();
        eng.reap(Duration::ZERO, buf)?;
        self.account(buf, now);
        let done = self.finish(eng, now);
        self.send(eng, now);
        Ok(done)
    }
}
