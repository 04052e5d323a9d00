//! directio against a device whose IO hangs: a loop device over a file served by a
//! tiny in-test FUSE server that can hold READ requests unanswered.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use multipathd::checkers::directio::DirectioEngine;
use multipathd::checkers::state::PathState;

#[path = "common/skip.rs"]
mod skip;
use skip::skipped;

const FILE_SIZE: u64 = 1 << 20;
const FUSE_ROOT: u64 = 1;
const FUSE_FILE: u64 = 2;
const ENOSYS: i32 = 38;
const ENOENT: i32 = 2;

// FUSE opcodes used here.
const LOOKUP: u32 = 1;
const GETATTR: u32 = 3;
const OPEN: u32 = 14;
const READ: u32 = 15;
const RELEASE: u32 = 18;
const FLUSH: u32 = 25;
const INIT: u32 = 26;
const OPENDIR: u32 = 27;
const RELEASEDIR: u32 = 29;

struct Server {
    dev: Arc<File>,
    stall: AtomicBool,
    /// `unique`, size of READs held back while stalling.
    held: Mutex<Vec<(u64, u32)>>,
}

fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_ne_bytes(b[o..o + 4].try_into().unwrap())
}

fn u64_at(b: &[u8], o: usize) -> u64 {
    u64::from_ne_bytes(b[o..o + 8].try_into().unwrap())
}

/// `struct fuse_attr` (88 bytes).
fn attr(ino: u64) -> Vec<u8> {
    let (size, mode, nlink) = if ino == FUSE_ROOT {
        (0, 0o040755u32, 2u32)
    } else {
        (FILE_SIZE, 0o100644, 1)
    };
    let mut a = Vec::with_capacity(88);
    a.extend(ino.to_ne_bytes());
    a.extend(size.to_ne_bytes());
    a.extend((size / 512).to_ne_bytes());
    a.extend([0u8; 24]); // atime, mtime, ctime
    a.extend([0u8; 12]); // their nanoseconds
    a.extend(mode.to_ne_bytes());
    a.extend(nlink.to_ne_bytes());
    a.extend([0u8; 12]); // uid, gid, rdev
    a.extend(4096u32.to_ne_bytes());
    a.extend(0u32.to_ne_bytes());
    assert_eq!(a.len(), 88);
    a
}

impl Server {
    fn reply(&self, unique: u64, error: i32, body: &[u8]) {
        let mut out = Vec::with_capacity(16 + body.len());
        out.extend(((16 + body.len()) as u32).to_ne_bytes());
        out.extend((-error).to_ne_bytes());
        out.extend(unique.to_ne_bytes());
        out.extend(body);
        // A reply to a request the kernel already dropped fails: nothing to do.
        let _ = (&*self.dev).write(&out);
    }

    fn release_held(&self) {
        let held: Vec<(u64, u32)> = std::mem::take(&mut *self.held.lock().unwrap());
        for (unique, size) in held {
            self.reply(unique, 0, &vec![0u8; size as usize]);
        }
    }

    fn serve(&self) {
        let mut buf = vec![0u8; (1 << 20) + 4096];
        loop {
            let n = match (&*self.dev).read(&mut buf) {
                Ok(n) => n,
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
                Err(_) => return, // unmounted
            };
            let req = &buf[..n];
            let (opcode, unique, nodeid) = (u32_at(req, 4), u64_at(req, 8), u64_at(req, 16));
            let arg = &req[40..];
            match opcode {
                INIT => {
                    let mut out = vec![0u8; 64];
                    out[0..4].copy_from_slice(&7u32.to_ne_bytes());
                    out[4..8].copy_from_slice(&31u32.to_ne_bytes());
                    out[8..12].copy_from_slice(&0u32.to_ne_bytes()); // no readahead
                    out[16..18].copy_from_slice(&16u16.to_ne_bytes());
                    out[18..20].copy_from_slice(&12u16.to_ne_bytes());
                    out[20..24].copy_from_slice(&(128u32 << 10).to_ne_bytes());
                    self.reply(unique, 0, &out);
                }
                LOOKUP => {
                    if nodeid == FUSE_ROOT && arg.starts_with(b"disk\0") {
                        let mut out = Vec::new();
                        out.extend(FUSE_FILE.to_ne_bytes());
                        out.extend([0u8; 32]); // generation, entry/attr valid (0 s: always ask)
                        out.extend(attr(FUSE_FILE));
                        self.reply(unique, 0, &out);
                    } else {
                        self.reply(unique, ENOENT, &[]);
                    }
                }
                GETATTR => {
                    let mut out = vec![0u8; 16];
                    out.extend(attr(nodeid));
                    self.reply(unique, 0, &out);
                }
                OPEN | OPENDIR => {
                    // FOPEN_DIRECT_IO: no page cache, every read reaches us.
                    let mut out = vec![0u8; 16];
                    out[8..12].copy_from_slice(&1u32.to_ne_bytes());
                    self.reply(unique, 0, &out);
                }
                READ => {
                    let size = u32_at(arg, 16);
                    if self.stall.load(Ordering::SeqCst) {
                        self.held.lock().unwrap().push((unique, size));
                    } else {
                        self.reply(unique, 0, &vec![0u8; size as usize]);
                    }
                }
                RELEASE | RELEASEDIR | FLUSH => self.reply(unique, 0, &[]),
                _ => self.reply(unique, ENOSYS, &[]),
            }
        }
    }
}

struct Setup {
    server: Arc<Server>,
    mnt: tempfile::TempDir,
    loopdev: Option<PathBuf>,
}

impl Drop for Setup {
    fn drop(&mut self) {
        self.server.stall.store(false, Ordering::SeqCst);
        self.server.release_held();
        if let Some(l) = &self.loopdev {
            let _ = Command::new("losetup").arg("-d").arg(l).status();
        }
        let target = cstr(self.mnt.path());
        // SAFETY: a valid NUL-terminated path.
        unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
    }
}

fn cstr(p: &Path) -> std::ffi::CString {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap()
}

fn setup() -> Option<Setup> {
    if !nix::unistd::geteuid().is_root() || !Path::new("/dev/fuse").exists() || !Path::new("/dev/loop-control").exists()
    {
        skipped("needs root, /dev/fuse and loop devices");
        return None;
    }
    let dev = File::options().read(true).write(true).open("/dev/fuse").unwrap();
    let mnt = tempfile::Builder::new()
        .prefix("mpd-fuse")
        .tempdir_in("/var/tmp")
        .unwrap();
    let opts = format!("fd={},rootmode=40000,user_id=0,group_id=0", dev.as_raw_fd());
    let (src, target, fstype, data) = (
        cstr(Path::new("mpd-stall")),
        cstr(mnt.path()),
        cstr(Path::new("fuse")),
        cstr(Path::new(&opts)),
    );
    // SAFETY: valid NUL-terminated strings for the duration of the call.
    let rc = unsafe {
        libc::mount(
            src.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV,
            data.as_ptr().cast(),
        )
    };
    assert_eq!(rc, 0, "mount fuse: {}", std::io::Error::last_os_error());
    let server = Arc::new(Server {
        dev: Arc::new(dev),
        stall: AtomicBool::new(false),
        held: Mutex::new(Vec::new()),
    });
    let s = Arc::clone(&server);
    std::thread::spawn(move || s.serve());
    let mut setup = Setup {
        server,
        mnt,
        loopdev: None,
    };
    let file = setup.mnt.path().join("disk");
    let out = Command::new("losetup")
        .args(["-f", "--show"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "losetup: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    setup.loopdev = Some(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
    Some(setup)
}

#[test]
fn hung_read_is_reported_as_timeout_then_up_once_it_completes() {
    let Some(s) = setup() else { return };
    let dev = s.loopdev.clone().unwrap();
    let mut engine = DirectioEngine::new(8).unwrap();

    // Healthy first.
    let t0 = Instant::now();
    assert_eq!(engine.start(1, &dev, t0, Duration::from_secs(60)), None);
    let give_up = Instant::now() + Duration::from_secs(20);
    let up = loop {
        let r = engine.poll(Instant::now());
        if let Some(r) = r.into_iter().next() {
            break r;
        }
        assert!(Instant::now() < give_up, "no completion from the healthy device");
        std::thread::sleep(Duration::from_millis(5));
    };
    assert_eq!(up.verdict.state, PathState::Up);

    // Now the backing store stops answering.
    s.server.stall.store(true, Ordering::SeqCst);
    let t1 = Instant::now();
    let timeout = Duration::from_secs(2);
    assert_eq!(engine.start(1, &dev, t1, timeout), None);
    // Wait until the server holds the read, so the IO is really stuck below us.
    let give_up = Instant::now() + Duration::from_secs(20);
    while s.server.held.lock().unwrap().is_empty() {
        assert!(engine.poll(t1).is_empty(), "a stalled read completed");
        assert!(Instant::now() < give_up, "the read never reached the FUSE server");
        std::thread::sleep(Duration::from_millis(5));
    }
    // Before the deadline: nothing; at the deadline: i/o timeout (the clock is a value).
    assert!(engine.poll(t1 + timeout - Duration::from_millis(1)).is_empty());
    let r = engine.poll(t1 + timeout);
    assert_eq!(r.len(), 1);
    assert_eq!(
        (r[0].path, r[0].verdict.state, r[0].verdict.message.as_str()),
        (1, PathState::Timeout, " timed out")
    );
    assert_eq!(r[0].took, timeout);
    // Reported once; the next check while still hung says timeout again at once.
    assert!(engine.poll(t1 + timeout * 2).is_empty());
    let again = engine.start(1, &dev, t1 + timeout * 2, timeout);
    assert_eq!(again.map(|v| v.state), Some(PathState::Timeout));
    assert_eq!(engine.in_flight(), 1);

    // The storage answers: the late completion is swallowed, the next check is up.
    s.server.stall.store(false, Ordering::SeqCst);
    s.server.release_held();
    let give_up = Instant::now() + Duration::from_secs(20);
    while engine.in_flight() > 0 {
        assert!(
            engine.poll(Instant::now()).is_empty(),
            "a timed-out read was reported twice"
        );
        assert!(Instant::now() < give_up, "the held read never completed");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(engine.start(1, &dev, Instant::now(), timeout), None);
    let give_up = Instant::now() + Duration::from_secs(20);
    let r = loop {
        if let Some(r) = engine.poll(Instant::now()).into_iter().next() {
            break r;
        }
        assert!(Instant::now() < give_up);
        std::thread::sleep(Duration::from_millis(5));
    };
    assert_eq!(r.verdict.state, PathState::Up);
}

#[test]
fn reads_beyond_the_aio_ring_time_out_too_and_nothing_leaks() {
    let Some(s) = setup() else { return };
    let dev = s.loopdev.clone().unwrap();
    // A tiny ring: most reads cannot even be submitted while the device hangs.
    let mut engine = DirectioEngine::new(4).unwrap();
    s.server.stall.store(true, Ordering::SeqCst);
    let t0 = Instant::now();
    let timeout = Duration::from_secs(3);
    for id in 0..200u64 {
        assert_eq!(engine.start(id, &dev, t0, timeout), None);
    }
    let give_up = Instant::now() + Duration::from_secs(20);
    while s.server.held.lock().unwrap().is_empty() {
        assert!(engine.poll(t0).is_empty());
        assert!(Instant::now() < give_up, "no read reached the FUSE server");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(engine.next_deadline(), Some(t0 + timeout));
    let mut timed_out = engine.poll(t0 + timeout);
    timed_out.sort_by_key(|r| r.path);
    assert_eq!(
        timed_out.iter().map(|r| r.path).collect::<Vec<_>>(),
        (0..200).collect::<Vec<_>>()
    );
    assert!(timed_out.iter().all(|r| r.verdict.state == PathState::Timeout));
    // Only reads the kernel holds are still tracked; the rest were dropped.
    let held_by_kernel = engine.in_flight();
    assert!((1..200).contains(&held_by_kernel), "{held_by_kernel}");
    assert_eq!(engine.next_deadline(), None);

    s.server.stall.store(false, Ordering::SeqCst);
    s.server.release_held();
    let give_up = Instant::now() + Duration::from_secs(20);
    while engine.in_flight() > 0 {
        s.server.release_held();
        assert!(
            engine.poll(Instant::now()).is_empty(),
            "a timed-out read was reported again"
        );
        assert!(Instant::now() < give_up, "{} reads never completed", engine.in_flight());
        std::thread::sleep(Duration::from_millis(5));
    }
}
