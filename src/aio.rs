//! Linux kernel AIO over raw syscalls (io_setup/io_submit/io_getevents/io_cancel).
//!
//! There is no maintained libaio binding on crates.io, and libaio itself is a thin
//! wrapper over these five syscalls, so we call them directly through `libc::syscall`.
//! The structs mirror `<linux/aio_abi.h>` (stable kernel UAPI).

use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

#[cfg(not(target_endian = "little"))]
compile_error!("the iocb layout below is the little-endian one (aio_key/aio_rw_flags swap on big-endian)");

/// `IOCB_CMD_PREAD` from aio_abi.h.
pub const IOCB_CMD_PREAD: u16 = 0;

/// Kernel `struct iocb` (64 bytes).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct Iocb {
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
    pub fn pread(fd: RawFd, buf: *mut u8, len: usize, offset: i64, data: u64) -> Iocb {
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
pub struct IoEvent {
    pub data: u64,
    pub obj: u64,
    pub res: i64,
    pub res2: i64,
}

/// One kernel AIO context; destroyed on drop (the kernel then waits for in-flight IO).
#[derive(Debug)]
pub struct AioContext {
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
    pub fn new(nr_events: usize) -> io::Result<AioContext> {
        let mut ctx: libc::c_ulong = 0;
        // SAFETY: io_setup writes one aio_context_t into `ctx`.
        check(unsafe { libc::syscall(libc::SYS_io_setup, nr_events as libc::c_long, &mut ctx) })?;
        Ok(AioContext { ctx, nr_events })
    }

    pub fn capacity(&self) -> usize {
        self.nr_events
    }

    /// Submits the iocbs; returns how many the kernel accepted.
    ///
    /// # Safety
    /// Every iocb and the buffer it points to must stay alive and unmoved until its
    /// completion event has been reaped (a cancelled read may still complete later).
    pub unsafe fn submit(&self, iocbs: &[*mut Iocb]) -> io::Result<usize> {
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
    pub fn get_events(&self, min: usize, events: &mut [IoEvent], timeout: Duration) -> io::Result<usize> {
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
    pub unsafe fn cancel(&self, iocb: *mut Iocb) -> io::Result<IoEvent> {
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
pub struct AlignedBuf {
    ptr: *mut u8,
    layout: std::alloc::Layout,
}

// SAFETY: the buffer is plain memory owned by this value.
unsafe impl Send for AlignedBuf {}

impl AlignedBuf {
    pub fn new(len: usize, align: usize) -> AlignedBuf {
        let layout = std::alloc::Layout::from_size_align(len.max(1), align.max(1))
            .expect("aligned buffer layout: align must be a power of two");
        // SAFETY: layout has non-zero size.
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
        if ptr.is_null() {
            std::alloc::handle_alloc_error(layout);
        }
        AlignedBuf { ptr, layout }
    }
    pub fn as_mut_ptr(&mut self) -> *mut u8 {
        self.ptr
    }
    pub fn len(&self) -> usize {
        self.layout.size()
    }
    pub fn is_empty(&self) -> bool {
        self.layout.size() == 0
    }
    pub fn as_slice(&self) -> &[u8] {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;

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
