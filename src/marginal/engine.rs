//! The IO engine behind the sampler: submit one-block direct reads per tested path,
//! reap the completions of all paths in one pass, cancel, close.
//!
//! [`fake::FakeEngine`] scripts per-read outcomes against a fake clock for tests;
//! the kernel-AIO engine lives in [`super::aio_engine`].

use std::io;
use std::path::Path;
use std::time::Duration;

/// Engine-assigned handle of one opened path.
pub type PathKey = u64;

/// One reaped read: `res` is the byte count or a negative errno.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Completion {
    pub key: PathKey,
    pub slot: usize,
    pub res: i64,
}

/// What the sampler needs from an IO engine.
pub trait IoEngine {
    /// Opens `dev` for direct reads with `slots` read buffers; returns the handle and
    /// the logical block size each read uses.
    fn open(&mut self, dev: &Path, slots: usize) -> io::Result<(PathKey, usize)>;
    /// Submits a one-block read at offset 0 in each given slot (all free). Returns how
    /// many were accepted: the first `n` of `slots`.
    fn submit(&mut self, key: PathKey, slots: &[usize]) -> io::Result<usize>;
    /// Best-effort cancel of the read in `slot`. Its completion still arrives via `reap`
    /// (possibly with the normal result: block devices refuse to cancel).
    fn cancel(&mut self, key: PathKey, slot: usize);
    /// No more reads for `key`. Reads still in flight keep their buffers until they
    /// complete; their completions are swallowed and then everything is released.
    fn close(&mut self, key: PathKey);
    /// Waits up to `timeout` for completions, then collects those of every path in one
    /// pass, appending the ones of open paths to `out`.
    fn reap(&mut self, timeout: Duration, out: &mut Vec<Completion>) -> io::Result<()>;
    /// Reads in flight on all paths, closed ones included (leak checks, idle test).
    fn in_flight(&self) -> usize;
}

pub mod fake {
    //! A scripted engine for tests: each read's outcome comes from a per-device script,
    //! and it completes when the test's fake clock reaches its completion time.

    use super::*;
    use std::collections::BTreeMap;
    use std::path::PathBuf;
    use std::time::Instant;

    /// The outcome of one fake read.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum FakeRead {
        /// Full block after `Duration`.
        Ok(Duration),
        /// Fails with this errno after `Duration`.
        Err(i32, Duration),
        /// Returns this many bytes (less than a block).
        Short(usize),
        /// Never completes until [`FakeEngine::unstick`].
        Stuck,
    }

    /// Maps the n-th read sent to a device (0-based) to its outcome.
    pub type Script = Box<dyn FnMut(u64) -> FakeRead + Send>;

    struct Device {
        blksize: usize,
        script: Script,
        reads: u64,
    }

    struct Open {
        dev: PathBuf,
        closed: bool,
        /// slot -> (completion time or None if stuck, result)
        in_flight: BTreeMap<usize, (Option<Instant>, i64)>,
    }

    /// See the module doc. `now` is the fake clock; tests advance it with `set_now`.
    pub struct FakeEngine {
        now: Instant,
        devices: BTreeMap<PathBuf, Device>,
        open: BTreeMap<PathKey, Open>,
        next_key: PathKey,
        /// Every `submit` call's accepted count, in order.
        pub submits: Vec<usize>,
        /// Every `cancel` call.
        pub cancels: Vec<(PathKey, usize)>,
        /// Number of `reap` passes.
        pub reaps: usize,
        /// When set, `submit` accepts at most this many reads per call.
        pub submit_limit: Option<usize>,
    }

    impl FakeEngine {
        pub fn new(now: Instant) -> FakeEngine {
            FakeEngine {
                now,
                devices: BTreeMap::new(),
                open: BTreeMap::new(),
                next_key: 1,
                submits: Vec::new(),
                cancels: Vec::new(),
                reaps: 0,
                submit_limit: None,
            }
        }

        /// Adds a device node `dev` with block size `blksize` driven by `script`.
        pub fn add_device(&mut self, dev: &str, blksize: usize, script: Script) {
            self.devices.insert(
                PathBuf::from(dev),
                Device {
                    blksize,
                    script,
                    reads: 0,
                },
            );
        }

        pub fn set_now(&mut self, now: Instant) {
            self.now = now;
        }

        /// Lets every stuck read on `dev` complete with a full block now.
        pub fn unstick(&mut self, dev: &str) {
            let now = self.now;
            for o in self.open.values_mut().filter(|o| o.dev == Path::new(dev)) {
                let blk = self.devices.get(&o.dev).map_or(0, |d| d.blksize) as i64;
                for v in o.in_flight.values_mut().filter(|v| v.0.is_none()) {
                    *v = (Some(now), blk);
                }
            }
        }

        /// Handles still held (open, or closed with reads in flight).
        pub fn handles(&self) -> usize {
            self.open.len()
        }

        /// Reads sent to `dev` so far.
        pub fn reads_sent(&self, dev: &str) -> u64 {
            self.devices.get(Path::new(dev)).map_or(0, |d| d.reads)
        }
    }

    impl IoEngine for FakeEngine {
        fn open(&mut self, dev: &Path, _slots: usize) -> io::Result<(PathKey, usize)> {
            let d = self
                .devices
                .get(dev)
                .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))?;
            let key = self.next_key;
            self.next_key += 1;
            self.open.insert(
                key,
                Open {
                    dev: dev.to_path_buf(),
                    closed: false,
                    in_flight: BTreeMap::new(),
                },
            );
            Ok((key, d.blksize))
        }

        fn submit(&mut self, key: PathKey, slots: &[usize]) -> io::Result<usize> {
            let o = self
                .open
                .get_mut(&key)
                .ok_or_else(|| io::Error::from_raw_os_error(libc::EBADF))?;
            let d = self
                .devices
                .get_mut(&o.dev)
                .ok_or_else(|| io::Error::from_raw_os_error(libc::ENODEV))?;
            let n = self.submit_limit.map_or(slots.len(), |l| l.min(slots.len()));
            for &slot in &slots[..n] {
                assert!(!o.in_flight.contains_key(&slot), "slot {slot} submitted twice");
                let outcome = (d.script)(d.reads);
                d.reads += 1;
                let v = match outcome {
                    FakeRead::Ok(after) => (Some(self.now + after), d.blksize as i64),
                    FakeRead::Err(errno, after) => (Some(self.now + after), -i64::from(errno)),
                    FakeRead::Short(len) => (Some(self.now), len as i64),
                    FakeRead::Stuck => (None, 0),
                };
                o.in_flight.insert(slot, v);
            }
            self.submits.push(n);
            Ok(n)
        }

        fn cancel(&mut self, key: PathKey, slot: usize) {
            self.cancels.push((key, slot));
        }

        fn close(&mut self, key: PathKey) {
            if let Some(o) = self.open.get_mut(&key) {
                o.closed = true;
                if o.in_flight.is_empty() {
                    self.open.remove(&key);
                }
            }
        }

        fn reap(&mut self, _timeout: Duration, out: &mut Vec<Completion>) -> io::Result<()> {
            self.reaps += 1;
            let now = self.now;
            for (&key, o) in self.open.iter_mut() {
                let due: Vec<usize> = o
                    .in_flight
                    .iter()
                    .filter(|(_, v)| v.0.is_some_and(|t| t <= now))
                    .map(|(s, _)| *s)
                    .collect();
                for slot in due {
                    if let Some((_, res)) = o.in_flight.remove(&slot)
                        && !o.closed
                    {
                        out.push(Completion { key, slot, res });
                    }
                }
            }
            self.open.retain(|_, o| !(o.closed && o.in_flight.is_empty()));
            Ok(())
        }

        fn in_flight(&self) -> usize {
            self.open.values().map(|o| o.in_flight.len()).sum()
        }
    }
}
