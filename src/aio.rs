//! Linux kernel AIO: the one engine behind the directio checker and the io-err-stat
//! thread.
//!
//! The syscalls (io_setup/io_submit/io_getevents/io_cancel/io_destroy) are called
//! through `libc::syscall`: there is no maintained libaio binding on crates.io, and
//! libaio itself is a thin wrapper over them. The structs mirror `<linux/aio_abi.h>`
//! (stable kernel UAPI).
//!
//! [`Engine`] owns what every user of kernel AIO would otherwise repeat: the O_DIRECT
//! open and block size ([`Device`]), an aligned buffer and a boxed iocb per read, kept
//! (with the device's file) until the read's completion is reaped, submission with
//! `IOCB_FLAG_RESFD` so that every completion signals the engine's eventfd,
//! zero-timeout reaping, cancel, and a drop that never frees memory the kernel may
//! still write into.
//!
//! Rings: an engine holds any number of AIO contexts, all signalling its one eventfd,
//! so one wait covers them all. The directio checker uses one ring for every path (a
//! path has at most one read in flight, and a tick's reads go out in one
//! `io_submit`). The io-err-stat sampler keeps a ring of 32 per tested path, as
//! upstream: a path whose reads hang can never take another path's room, and the
//! number of tested paths needs no bound up front.
//!
//! Waiting: [`Engine::wait`] polls the eventfd (the io-err-stat thread waits for
//! nothing else); a [`Waker`] turns it into a channel for the checker loop, whose
//! `select!` only takes channels.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, TrySendError};
use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::eventfd::{EfdFlags, EventFd};

#[cfg(not(target_endian = "little"))]
compile_error!("the iocb layout below is the little-endian one (aio_key/aio_rw_flags swap on big-endian)");

/// `IOCB_CMD_PREAD` from aio_abi.h.
const IOCB_CMD_PREAD: u16 = 0;
/// `IOCB_FLAG_RESFD` from aio_abi.h: signal `resfd` (an eventfd) on completion.
const IOCB_FLAG_RESFD: u32 = 1;

/// Kernel `struct iocb` (64 bytes).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
struct Iocb {
    pub data: u64,
    pub key: u32,
    pub rw_flags: u32,
    pub opcode: u16,
    pub reqprio: i16,
    pub fildes: u32,
    pub buf: u64,
    pub nbytes: u64,
    pub offset: i64,
    pub reserved2: u64,
    pub flags: u32,
    pub resfd: u32,
}

impl Iocb {
    /// A positional read of `len` bytes at `offset` into `buf`, tagged with `data`.
    fn pread(fd: RawFd, buf: *mut u8, len: usize, offset: i64, data: u64) -> Iocb {
        Iocb {
            data,
            opcode: IOCB_CMD_PREAD,
            fildes: fd as u32,
            buf: buf as u64,
            nbytes: len as u64,
            offset,
            ..Default::default()
        }
    }
}

/// Kernel `struct io_event` (32 bytes). `res` is the byte count or a negative errno.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
struct IoEvent {
    pub data: u64,
    pub obj: u64,
    pub res: i64,
    pub res2: i64,
}

/// One kernel AIO context; destroyed on drop (the kernel then waits for in-flight IO).
#[derive(Debug)]
struct AioContext {
    ctx: libc::c_ulong,
    nr_events: usize,
}

fn check(ret: libc::c_long) -> io::Result<usize> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret as usize)
    }
}

impl AioContext {
    /// `io_setup(nr_events)`. Fails with EAGAIN when `fs.aio-max-nr` is exhausted.
    fn new(nr_events: usize) -> io::Result<AioContext> {
        let mut ctx: libc::c_ulong = 0;
        // SAFETY: io_setup writes one aio_context_t into `ctx`.
        check(unsafe { libc::syscall(libc::SYS_io_setup, nr_events as libc::c_long, &mut ctx) })?;
        Ok(AioContext { ctx, nr_events })
    }

    fn capacity(&self) -> usize {
        self.nr_events
    }

    /// Submits the iocbs; returns how many the kernel accepted.
    ///
    /// # Safety
    /// Every iocb and the buffer it points to must stay alive and unmoved until its
    /// completion event has been reaped (a cancelled read may still complete later).
    unsafe fn submit(&self, iocbs: &[*mut Iocb]) -> io::Result<usize> {
        if iocbs.is_empty() {
            return Ok(0);
        }
        // SAFETY: the caller guarantees the iocbs are valid (see above).
        check(unsafe {
            libc::syscall(
                libc::SYS_io_submit,
                self.ctx,
                iocbs.len() as libc::c_long,
                iocbs.as_ptr(),
            )
        })
    }

    /// Reaps between `min` and `events.len()` completions, waiting at most `timeout`.
    fn get_events(&self, min: usize, events: &mut [IoEvent], timeout: Duration) -> io::Result<usize> {
        let mut ts = libc::timespec {
            tv_sec: timeout.as_secs() as libc::time_t,
            tv_nsec: timeout.subsec_nanos() as libc::c_long,
        };
        loop {
            // SAFETY: `events` has room for `events.len()` io_event records.
            let r = unsafe {
                libc::syscall(
                    libc::SYS_io_getevents,
                    self.ctx,
                    min.min(events.len()) as libc::c_long,
                    events.len() as libc::c_long,
                    events.as_mut_ptr(),
                    &mut ts,
                )
            };
            match check(r) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => return other,
            }
        }
    }

    /// Asks the kernel to cancel a submitted iocb. Block-device O_DIRECT reads usually
    /// answer EINVAL (not cancellable): the caller must still wait for the completion.
    ///
    /// # Safety
    /// `iocb` must be one submitted to this context and still in flight.
    unsafe fn cancel(&self, iocb: *mut Iocb) -> io::Result<IoEvent> {
        let mut ev = IoEvent::default();
        // SAFETY: the caller guarantees `iocb` was submitted here.
        check(unsafe { libc::syscall(libc::SYS_io_cancel, self.ctx, iocb, &mut ev) })?;
        Ok(ev)
    }
}

impl Drop for AioContext {
    fn drop(&mut self) {
        // SAFETY: ctx came from io_setup and is destroyed exactly once.
        unsafe { libc::syscall(libc::SYS_io_destroy, self.ctx) };
    }
}

/// A heap buffer aligned for O_DIRECT.
struct AlignedBuf {
    ptr: *mut u8,
    layout: std::alloc::Layout,
}

// SAFETY: the buffer is plain memory owned by this value.
unsafe impl Send for AlignedBuf {}

impl AlignedBuf {
    fn new(len: usize, align: usize) -> AlignedBuf {
        let layout = std::alloc::Layout::from_size_align(len.max(1), align.max(1))
            .expect("aligned buffer layout: align must be a power of two");
        // SAFETY: layout has non-zero size.
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
        if ptr.is_null() {
            std::alloc::handle_alloc_error(layout);
        }
        AlignedBuf { ptr, layout }
    }
    fn as_mut_ptr(&mut self) -> *mut u8 {
        self.ptr
    }
    #[cfg(test)]
    fn as_slice(&self) -> &[u8] {
        // SAFETY: ptr is valid for layout.size() initialised bytes.
        unsafe { std::slice::from_raw_parts(self.ptr, self.layout.size()) }
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        // SAFETY: allocated with this layout in `new`.
        unsafe { std::alloc::dealloc(self.ptr, self.layout) };
    }
}

/// O_DIRECT buffers are aligned to a page, which covers every logical block size.
const BUF_ALIGN: usize = 4096;
/// Events taken per `io_getevents` call.
const REAP_BATCH: usize = 64;
/// How long dropping an engine waits for reads still in flight before leaking them.
const DROP_WAIT: Duration = Duration::from_secs(10);
/// Poll slice while dropping: a [`Waker`] may be taking the eventfd's signals.
const DROP_SLICE: Duration = Duration::from_millis(10);
/// Retry of a failed `poll` in the waker thread.
const WAKER_RETRY: Duration = Duration::from_millis(10);

/// A device opened for direct reads, with the size of one read.
#[derive(Clone)]
pub struct Device {
    file: Arc<File>,
    blksize: usize,
}

impl Device {
    /// Opens `path` with O_DIRECT. Reads are one block: `BLKBSZGET`, or for files
    /// that are not block devices (tests) the file system's preferred IO size.
    pub fn open(path: &Path) -> io::Result<Device> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECT)
            .open(path)?;
        let blksize =
            crate::blkdev::soft_block_size(file.as_raw_fd()).unwrap_or_else(|_| match nix::sys::stat::fstat(&file) {
                Ok(st) if st.st_blksize > 0 => st.st_blksize as usize,
                _ => 512,
            });
        Ok(Device {
            file: Arc::new(file),
            blksize,
        })
    }

    pub fn block_size(&self) -> usize {
        self.blksize
    }
}

/// Handle of one AIO context of an [`Engine`].
pub type RingId = u64;

/// One reaped read: `res` is the byte count or a negative errno.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Done {
    pub ring: RingId,
    pub slot: u64,
    pub res: i64,
}

/// A read the kernel holds.
struct Read {
    // Boxed: the kernel keeps this address while the ring's map rehashes.
    iocb: Box<Iocb>,
    // The kernel writes into it until the completion is reaped.
    _buf: AlignedBuf,
    // A stuck path keeps its device open, as without the engine.
    _file: Arc<File>,
}

struct Ring {
    // Declared first, so dropped first: io_destroy waits for the reads before their
    // iocbs and buffers go.
    ctx: AioContext,
    reads: HashMap<u64, Read>,
    /// Its user is done with it: completions are swallowed, it goes once idle.
    closed: bool,
}

/// See the module doc. A read is known by its ring and a slot number its user picks,
/// unique among that ring's reads in flight.
pub struct Engine {
    efd: Arc<EventFd>,
    rings: BTreeMap<RingId, Ring>,
    next_ring: RingId,
    events: Vec<IoEvent>,
}

impl Engine {
    pub fn new() -> io::Result<Engine> {
        Ok(Engine {
            efd: Arc::new(EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)?),
            rings: BTreeMap::new(),
            next_ring: 1,
            events: vec![IoEvent::default(); REAP_BATCH],
        })
    }

    /// A new AIO context with room for `nr_events` reads in flight. Fails with EAGAIN
    /// when `fs.aio-max-nr` is exhausted.
    pub fn add_ring(&mut self, nr_events: usize) -> io::Result<RingId> {
        let ctx = AioContext::new(nr_events)?;
        let id = self.next_ring;
        self.next_ring += 1;
        self.rings.insert(
            id,
            Ring {
                ctx,
                reads: HashMap::new(),
                closed: false,
            },
        );
        Ok(id)
    }

    /// No more reads on `ring`: it goes once its reads in flight are reaped, and
    /// their completions are not reported.
    pub fn close_ring(&mut self, ring: RingId) {
        if let Some(r) = self.rings.get_mut(&ring) {
            r.closed = true;
            if r.reads.is_empty() {
                self.rings.remove(&ring);
            }
        }
    }

    /// Submits a one-block read at offset 0 of each `(device, slot)`, like
    /// `io_submit`: returns how many were accepted (the first `n`; 0 when the ring is
    /// full), or the error that refused the first one.
    pub fn submit(&mut self, ring: RingId, reads: &[(&Device, u64)]) -> io::Result<usize> {
        let resfd = self.efd.as_raw_fd() as u32;
        let r = self
            .rings
            .get_mut(&ring)
            .filter(|r| !r.closed)
            .ok_or_else(|| io::Error::from_raw_os_error(libc::EBADF))?;
        // Build no more iocbs than the ring takes: a long queue behind a full ring
        // would otherwise cost an allocation per queued read on every attempt.
        let room = r.ctx.capacity().saturating_sub(r.reads.len());
        let mut new = Vec::with_capacity(reads.len().min(room));
        for &(dev, slot) in &reads[..reads.len().min(room)] {
            if r.reads.contains_key(&slot) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("slot {slot} not free"),
                ));
            }
            let mut buf = AlignedBuf::new(dev.blksize, BUF_ALIGN.max(dev.blksize));
            let mut iocb = Box::new(Iocb::pread(
                dev.file.as_raw_fd(),
                buf.as_mut_ptr(),
                dev.blksize,
                0,
                slot,
            ));
            iocb.flags = IOCB_FLAG_RESFD;
            iocb.resfd = resfd;
            new.push((
                slot,
                Read {
                    iocb,
                    _buf: buf,
                    _file: Arc::clone(&dev.file),
                },
            ));
        }
        let ptrs: Vec<*mut Iocb> = new.iter_mut().map(|(_, read)| &mut *read.iocb as *mut Iocb).collect();
        // SAFETY: the accepted iocbs, their buffers and files move into `r.reads`
        // below (the boxes and buffers keep their addresses) and leave it only when
        // reaped, or on drop after io_destroy, or leaked (see `Drop`).
        let n = unsafe { r.ctx.submit(&ptrs) }?;
        r.reads.extend(new.into_iter().take(n));
        Ok(n)
    }

    /// Whether the read in `slot` of `ring` is in flight.
    pub fn is_in_flight(&self, ring: RingId, slot: u64) -> bool {
        self.rings.get(&ring).is_some_and(|r| r.reads.contains_key(&slot))
    }

    /// Asks the kernel to cancel a read. `Ok(res)`: it ended here (older kernels
    /// return the event from `io_cancel`), with this result, and is released. An
    /// error (EINVAL: block devices do not cancel; EINPROGRESS) means its completion
    /// still comes through [`reap`](Self::reap).
    pub fn cancel(&mut self, ring: RingId, slot: u64) -> io::Result<i64> {
        let r = self
            .rings
            .get_mut(&ring)
            .ok_or_else(|| io::Error::from_raw_os_error(libc::EBADF))?;
        let read = r
            .reads
            .get_mut(&slot)
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))?;
        // SAFETY: the iocb was submitted to this ring's context and is not reaped.
        let ev = unsafe { r.ctx.cancel(&mut *read.iocb) }?;
        r.reads.remove(&slot);
        Ok(ev.res)
    }

    /// Waits up to `timeout` for the eventfd, then clears it. Wakes at once when
    /// something completed since the last wait.
    pub fn wait(&self, timeout: Duration) -> io::Result<()> {
        // Round up so a sub-millisecond remainder still waits instead of spinning.
        let ms = timeout.as_micros().div_ceil(1000);
        let timeout = PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX);
        match poll(&mut [PollFd::new(self.efd.as_fd(), PollFlags::POLLIN)], timeout) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
        // EAGAIN (nothing signalled) is fine: the caller reaps either way.
        let _ = self.efd.read();
        Ok(())
    }

    /// Collects, without waiting, the completions of every ring with reads in flight
    /// and appends those of open rings to `out`.
    pub fn reap(&mut self, out: &mut Vec<Done>) -> io::Result<()> {
        for (&id, r) in self.rings.iter_mut() {
            while !r.reads.is_empty() {
                let n = r.ctx.get_events(0, &mut self.events, Duration::ZERO)?;
                for ev in &self.events[..n] {
                    if r.reads.remove(&ev.data).is_some() && !r.closed {
                        out.push(Done {
                            ring: id,
                            slot: ev.data,
                            res: ev.res,
                        });
                    }
                }
                if n < self.events.len() {
                    break;
                }
            }
        }
        self.rings.retain(|_, r| !(r.closed && r.reads.is_empty()));
        Ok(())
    }

    /// Reads in flight on all rings, closed ones included.
    pub fn in_flight(&self) -> usize {
        self.rings.values().map(|r| r.reads.len()).sum()
    }

    /// A [`Waker`] on this engine's completions.
    pub fn waker(&self) -> io::Result<Waker> {
        Waker::spawn(Arc::clone(&self.efd))
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        // io_destroy waits for in-flight reads uninterruptibly, for ever on a hung
        // device: give them DROP_WAIT, then leak the rings that still have some
        // (the kernel may write into their buffers; it frees the contexts at exit).
        for r in self.rings.values_mut() {
            r.closed = true;
        }
        let give_up = Instant::now() + DROP_WAIT;
        let mut none = Vec::new();
        while self.in_flight() > 0 {
            let left = give_up.saturating_duration_since(Instant::now());
            if left.is_zero() || self.wait(left.min(DROP_SLICE)).is_err() || self.reap(&mut none).is_err() {
                break;
            }
        }
        for (_, r) in std::mem::take(&mut self.rings) {
            if !r.reads.is_empty() {
                std::mem::forget(r);
            }
        }
    }
}

/// Wakes a crossbeam `select!` when reads of an [`Engine`] complete: a thread blocks
/// in `poll` on the engine's eventfd and sends a token on a bounded(1) channel. A
/// token still pending covers later completions, as the receiver reaps after taking
/// it. The thread ends when the waker is dropped.
pub struct Waker {
    rx: Receiver<()>,
    stop: Arc<EventFd>,
    thread: Option<JoinHandle<()>>,
}

impl Waker {
    fn spawn(efd: Arc<EventFd>) -> io::Result<Waker> {
        let stop = Arc::new(EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)?);
        let (tx, rx) = crossbeam_channel::bounded(1);
        let stop_rx = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("aio-waker".to_string())
            .spawn(move || {
                loop {
                    let mut fds = [
                        PollFd::new(efd.as_fd(), PollFlags::POLLIN),
                        PollFd::new(stop_rx.as_fd(), PollFlags::POLLIN),
                    ];
                    match poll(&mut fds, PollTimeout::NONE) {
                        Ok(_) | Err(Errno::EINTR) => {}
                        Err(e) => {
                            log::warn!("aio waker: poll: {e}");
                            std::thread::sleep(WAKER_RETRY);
                        }
                    }
                    if stop_rx.read().is_ok() {
                        return;
                    }
                    // Clear before sending: a completion after this read signals again.
                    if efd.read().is_ok() && matches!(tx.try_send(()), Err(TrySendError::Disconnected(()))) {
                        return;
                    }
                }
            })?;
        Ok(Waker {
            rx,
            stop,
            thread: Some(thread),
        })
    }

    /// Yields a token after completions; reap then.
    pub fn receiver(&self) -> &Receiver<()> {
        &self.rx
    }
}

impl Drop for Waker {
    fn drop(&mut self) {
        if self.stop.write(1).is_ok()
            && let Some(t) = self.thread.take()
        {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A file in /var/tmp (tmpfs, often /tmp, has no O_DIRECT) opened as a Device;
    /// None, said loudly, where O_DIRECT is refused.
    fn device() -> Option<(tempfile::TempDir, Device)> {
        let dir = tempfile::Builder::new()
            .prefix("mpd-aio")
            .tempdir_in("/var/tmp")
            .expect("tempdir");
        let path = dir.path().join("disk");
        std::fs::write(&path, vec![0x5a; 1 << 16]).expect("write");
        match Device::open(&path) {
            Ok(d) => Some((dir, d)),
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                eprintln!("\n*** SKIPPED: /var/tmp has no O_DIRECT ***\n");
                None
            }
            Err(e) => panic!("open O_DIRECT: {e}"),
        }
    }

    /// Waits on the eventfd and reaps until `n` completions (or fails after 10 s).
    fn reap_n(eng: &mut Engine, n: usize) -> Vec<Done> {
        let give_up = Instant::now() + Duration::from_secs(10);
        let mut out = Vec::new();
        while out.len() < n {
            assert!(Instant::now() < give_up, "{} of {n} completions", out.len());
            eng.wait(Duration::from_millis(100)).expect("wait");
            eng.reap(&mut out).expect("reap");
        }
        out
    }

    #[test]
    fn engine_reads_one_block_per_slot_on_several_rings() {
        let Some((_dir, dev)) = device() else { return };
        let mut eng = Engine::new().expect("engine");
        let (a, b) = (eng.add_ring(4).expect("ring"), eng.add_ring(4).expect("ring"));
        assert_eq!(eng.submit(a, &[(&dev, 0), (&dev, 1)]).expect("submit"), 2);
        assert_eq!(eng.submit(b, &[(&dev, 0)]).expect("submit"), 1);
        let mut got = reap_n(&mut eng, 3);
        got.sort_by_key(|d| (d.ring, d.slot));
        let bs = dev.block_size() as i64;
        let want = vec![
            Done {
                ring: a,
                slot: 0,
                res: bs,
            },
            Done {
                ring: a,
                slot: 1,
                res: bs,
            },
            Done {
                ring: b,
                slot: 0,
                res: bs,
            },
        ];
        assert_eq!(got, want);
        assert_eq!(eng.in_flight(), 0);
        // A full ring takes no more (0 accepted), and a closed ring none at all.
        let four: Vec<(&Device, u64)> = (0..5).map(|s| (&dev, s)).collect();
        assert_eq!(eng.submit(a, &four).expect("submit"), 4);
        assert_eq!(eng.submit(a, &[(&dev, 9)]).expect("submit"), 0);
        eng.close_ring(a);
        assert_eq!(
            eng.submit(a, &[(&dev, 9)]).unwrap_err().raw_os_error(),
            Some(libc::EBADF)
        );
    }

    #[test]
    fn a_closed_ring_swallows_its_completions_and_goes() {
        let Some((_dir, dev)) = device() else { return };
        let mut eng = Engine::new().expect("engine");
        let (a, b) = (eng.add_ring(4).expect("ring"), eng.add_ring(4).expect("ring"));
        assert_eq!(eng.submit(a, &[(&dev, 0), (&dev, 1)]).expect("submit"), 2);
        assert_eq!(eng.submit(b, &[(&dev, 7)]).expect("submit"), 1);
        eng.close_ring(a);
        let got = reap_n(&mut eng, 1);
        assert_eq!(
            got,
            vec![Done {
                ring: b,
                slot: 7,
                res: dev.block_size() as i64
            }]
        );
        let give_up = Instant::now() + Duration::from_secs(10);
        while eng.in_flight() > 0 {
            assert!(Instant::now() < give_up, "reads of the closed ring never completed");
            eng.wait(Duration::from_millis(100)).expect("wait");
            let mut out = Vec::new();
            eng.reap(&mut out).expect("reap");
            assert!(out.is_empty(), "a closed ring's completion was reported: {out:?}");
        }
        assert_eq!(eng.rings.keys().copied().collect::<Vec<_>>(), vec![b]);
    }

    #[test]
    fn the_waker_yields_after_a_completion_and_stops_on_drop() {
        let Some((_dir, dev)) = device() else { return };
        let mut eng = Engine::new().expect("engine");
        let ring = eng.add_ring(4).expect("ring");
        let waker = eng.waker().expect("waker");
        assert_eq!(eng.submit(ring, &[(&dev, 3)]).expect("submit"), 1);
        waker
            .receiver()
            .recv_timeout(Duration::from_secs(10))
            .expect("a token after the completion");
        let mut out = Vec::new();
        eng.reap(&mut out).expect("reap");
        assert_eq!(
            out,
            vec![Done {
                ring,
                slot: 3,
                res: dev.block_size() as i64
            }]
        );
        let rx = waker.receiver().clone();
        drop(waker);
        assert!(
            rx.recv_timeout(Duration::from_secs(10)).is_err(),
            "the waker thread ended"
        );
    }

    #[test]
    fn layouts_match_the_kernel_abi() {
        assert_eq!(std::mem::size_of::<Iocb>(), 64);
        assert_eq!(std::mem::size_of::<IoEvent>(), 32);
    }

    #[test]
    fn reads_32_blocks_with_o_direct() {
        const BS: usize = 4096;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("blocks");
        let mut f = std::fs::File::create(&path).expect("create");
        for i in 0..32u8 {
            f.write_all(&[i; BS]).expect("write");
        }
        f.sync_all().expect("sync");
        let f = match std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECT)
            .open(&path)
        {
            Ok(f) => f,
            // tmpfs has no O_DIRECT; the lab covers real block devices.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => return,
            Err(e) => panic!("open O_DIRECT: {e}"),
        };
        let ctx = AioContext::new(32).expect("io_setup");
        let mut bufs: Vec<AlignedBuf> = (0..32).map(|_| AlignedBuf::new(BS, BS)).collect();
        let mut iocbs: Vec<Iocb> = bufs
            .iter_mut()
            .enumerate()
            .map(|(i, b)| Iocb::pread(f.as_raw_fd(), b.as_mut_ptr(), BS, (i * BS) as i64, i as u64))
            .collect();
        let ptrs: Vec<*mut Iocb> = iocbs.iter_mut().map(|c| c as *mut Iocb).collect();
        // SAFETY: iocbs and bufs outlive the reaping loop below.
        let n = unsafe { ctx.submit(&ptrs) }.expect("io_submit");
        assert_eq!(n, 32);
        let mut events = [IoEvent::default(); 32];
        let mut got = 0;
        while got < 32 {
            got += ctx
                .get_events(1, &mut events[got..], Duration::from_secs(5))
                .expect("io_getevents");
        }
        for ev in &events {
            assert_eq!(ev.res, BS as i64);
            let i = ev.data as usize;
            assert!(bufs[i].as_slice().iter().all(|&b| b == i as u8));
        }
    }
}
