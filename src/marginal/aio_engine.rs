//! The kernel-AIO [`IoEngine`]: one O_DIRECT fd and one ring of the [`aio::Engine`]
//! (32 events) per tested path, as the design asks; a path's key is its ring.
//!
//! Waiting: every read signals the engine's one eventfd, so a single `poll` on it waits
//! for a completion on *any* path (and wakes as soon as one lands, which keeps latency
//! measurements honest). After it, each ring with reads in flight is drained with a
//! zero-timeout `io_getevents`. One pass thus costs one poll, one eventfd read and one
//! non-blocking `io_getevents` per busy path, instead of upstream's blocking 10 ms
//! `io_getevents` per path.
//!
//! Lifetime: a closed path whose reads are still in flight (stuck, or not cancellable:
//! block devices answer EINVAL to `io_cancel`) keeps its ring, buffers and fd in the
//! engine until every completion has been reaped.

use std::collections::HashMap;
use std::io;
use std::path::Path;
use std::time::Duration;

use crate::aio::{self, Device};

use super::engine::{Completion, IoEngine, PathKey};

/// See the module doc.
pub struct AioEngine {
    aio: aio::Engine,
    /// Open paths by key (= ring).
    paths: HashMap<PathKey, Device>,
    reaped: Vec<aio::Done>,
    /// Completions handed back by a successful `io_cancel` (older kernels), delivered
    /// with the next reap.
    cancelled: Vec<Completion>,
}

impl AioEngine {
    pub fn new() -> io::Result<AioEngine> {
        Ok(AioEngine {
            aio: aio::Engine::new()?,
            paths: HashMap::new(),
            reaped: Vec::new(),
            cancelled: Vec::new(),
        })
    }
}

impl IoEngine for AioEngine {
    fn open(&mut self, dev: &Path, slots: usize) -> io::Result<(PathKey, usize)> {
        let device = Device::open(dev)?;
        let blksize = device.block_size();
        if !blksize.is_power_of_two() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: bad block size {blksize}", dev.display()),
            ));
        }
        let key = self.aio.add_ring(slots)?;
        self.paths.insert(key, device);
        Ok((key, blksize))
    }

    fn submit(&mut self, key: PathKey, slots: &[usize]) -> io::Result<usize> {
        let device = self
            .paths
            .get(&key)
            .ok_or_else(|| io::Error::from_raw_os_error(libc::EBADF))?;
        let reads: Vec<(&Device, u64)> = slots.iter().map(|&s| (device, s as u64)).collect();
        self.aio.submit(key, &reads)
    }

    fn cancel(&mut self, key: PathKey, slot: usize) {
        if !self.aio.is_in_flight(key, slot as u64) {
            return;
        }
        match self.aio.cancel(key, slot as u64) {
            Ok(res) => {
                if self.paths.contains_key(&key) {
                    self.cancelled.push(Completion { key, slot, res });
                }
            }
            // EINVAL (not cancellable) or EINPROGRESS (event comes via the ring).
            Err(e) => log::debug!("io error statistic: io_cancel error {e}"),
        }
    }

    fn close(&mut self, key: PathKey) {
        self.paths.remove(&key);
        self.aio.close_ring(key);
        self.cancelled.retain(|c| c.key != key);
    }

    fn reap(&mut self, timeout: Duration, out: &mut Vec<Completion>) -> io::Result<()> {
        if self.cancelled.is_empty() {
            self.aio.wait(timeout)?;
        }
        out.append(&mut self.cancelled);
        let r = self.aio.reap(&mut self.reaped);
        out.extend(self.reaped.drain(..).map(|d| Completion {
            key: d.ring,
            slot: d.slot as usize,
            res: d.res,
        }));
        r
    }

    fn in_flight(&self) -> usize {
        self.aio.in_flight()
    }
}
