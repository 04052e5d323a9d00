//! Injected read errors on a real block device: a loop device over a file of a small
//! read-only FUSE filesystem whose `read()` fails every k-th request (a deterministic
//! pattern, so the ±2 percentage point check cannot flake). The io-err-stat thread over
//! the kernel-AIO engine must measure the injected rate.
//!
//! Needs root, /dev/fuse and losetup; skips loudly otherwise.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, UNIX_EPOCH};

use fuser::{
    Config, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, INodeNo, LockOwner, MountOption, OpenFlags,
    ReplyAttr, ReplyData, ReplyEntry, ReplyOpen, Request,
};
use multipathd::marginal::sampler::{Counts, SampleTime, TestSpec};
use multipathd::marginal::thread::{Cmd, IoErrEvent, spawn_io_err_stat};

#[path = "common/skip.rs"]
mod skip;
use skip::skipped;

const DISK_SIZE: u64 = 1 << 20;

/// One file per entry: its name, "fail every k-th read" (0: never) and a per-read delay.
struct FaultFile {
    name: &'static str,
    fail_every: u64,
    delay: Duration,
    reads: AtomicU64,
    failed: AtomicU64,
    /// While set, read() does not return: a stuck path.
    hang: AtomicBool,
}

struct FaultFs {
    files: Arc<Vec<FaultFile>>,
}

fn attr(ino: u64) -> FileAttr {
    let dir = ino == 1;
    FileAttr {
        ino: INodeNo(ino),
        size: if dir { 0 } else { DISK_SIZE },
        blocks: if dir { 0 } else { DISK_SIZE / 512 },
        atime: UNIX_EPOCH,
        mtime: UNIX_EPOCH,
        ctime: UNIX_EPOCH,
        crtime: UNIX_EPOCH,
        kind: if dir {
            FileType::Directory
        } else {
            FileType::RegularFile
        },
        perm: if dir { 0o555 } else { 0o444 },
        nlink: if dir { 2 } else { 1 },
        uid: 0,
        gid: 0,
        rdev: 0,
        flags: 0,
        blksize: 512,
    }
}

impl FaultFs {
    fn file(&self, ino: INodeNo) -> Option<&FaultFile> {
        let i = u64::from(ino).checked_sub(2)?;
        self.files.get(i as usize)
    }
}

impl Filesystem for FaultFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        match self.files.iter().position(|f| OsStr::new(f.name) == name) {
            Some(i) if u64::from(parent) == 1 => {
                reply.entry(&Duration::from_secs(60), &attr(i as u64 + 2), fuser::Generation(0))
            }
            _ => reply.error(Errno::ENOENT),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        if u64::from(ino) == 1 || self.file(ino).is_some() {
            reply.attr(&Duration::from_secs(60), &attr(u64::from(ino)));
        } else {
            reply.error(Errno::ENOENT);
        }
    }

    fn open(&self, _req: &Request, _ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        // No page cache: every block-layer read reaches read() below.
        reply.opened(FileHandle(0), FopenFlags::FOPEN_DIRECT_IO);
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let Some(f) = self.file(ino) else {
            return reply.error(Errno::ENOENT);
        };
        let n = f.reads.fetch_add(1, Ordering::SeqCst);
        while f.hang.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(5));
        }
        if !f.delay.is_zero() {
            std::thread::sleep(f.delay);
        }
        if f.fail_every > 0 && n % f.fail_every == f.fail_every - 1 {
            f.failed.fetch_add(1, Ordering::SeqCst);
            return reply.error(Errno::EIO);
        }
        let len = (DISK_SIZE.saturating_sub(offset)).min(u64::from(size)) as usize;
        reply.data(&vec![0u8; len]);
    }
}

struct Loop(PathBuf);

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").arg("-d").arg(&self.0).status();
    }
}

fn losetup(file: &Path) -> Result<Loop, String> {
    let out = Command::new("losetup")
        .args(["-r", "-f", "--show"])
        .arg(file)
        .output()
        .map_err(|e| format!("losetup: {e}"))?;
    if !out.status.success() {
        return Err(format!("losetup: {}", String::from_utf8_lossy(&out.stderr).trim()));
    }
    Ok(Loop(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())))
}

/// The mounted filesystem and one loop device per file. Field order = drop order: the
/// loop devices are detached before the filesystem is unmounted.
struct Rig {
    loops: Vec<Loop>,
    _session: fuser::BackgroundSession,
    _dir: tempfile::TempDir,
    files: Arc<Vec<FaultFile>>,
}

fn rig(files: Vec<FaultFile>, threads: usize) -> Option<Rig> {
    if !Path::new("/dev/fuse").exists() {
        skipped("/dev/fuse is missing");
        return None;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let files = Arc::new(files);
    let mut cfg = Config::default();
    cfg.mount_options = vec![MountOption::RO, MountOption::FSName("mpath-fault".into())];
    cfg.n_threads = Some(threads);
    let session = match fuser::spawn_mount(FaultFs { files: files.clone() }, dir.path(), &cfg) {
        Ok(s) => s,
        Err(e) => {
            skipped(&format!("cannot mount FUSE (needs root): {e}"));
            return None;
        }
    };
    let mut loops = Vec::new();
    for f in files.iter() {
        match losetup(&dir.path().join(f.name)) {
            Ok(l) => loops.push(l),
            Err(e) => {
                skipped(&e);
                return None;
            }
        }
    }
    Some(Rig {
        loops,
        _session: session,
        _dir: dir,
        files,
    })
}

fn file(name: &'static str, fail_every: u64, delay: Duration) -> FaultFile {
    FaultFile {
        name,
        fail_every,
        delay,
        reads: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        hang: AtomicBool::new(false),
    }
}

/// Runs one io-err-stat thread over all `specs` at once and returns the final counts
/// in the order given.
fn measure(specs: Vec<TestSpec>) -> Vec<Counts> {
    measure_within(specs, Duration::from_secs(60))
}

fn measure_within(specs: Vec<TestSpec>, limit: Duration) -> Vec<Counts> {
    let (ctx, crx) = crossbeam_channel::unbounded();
    let (etx, erx) = crossbeam_channel::unbounded();
    let h = spawn_io_err_stat(crx, etx).expect("spawn");
    let names: Vec<String> = specs.iter().map(|s| s.path.clone()).collect();
    for s in specs {
        ctx.send(Cmd::Start(s)).expect("send");
    }
    let mut got: Vec<Option<Counts>> = vec![None; names.len()];
    while got.iter().any(Option::is_none) {
        match erx.recv_timeout(limit).expect("verdicts in time") {
            IoErrEvent::Finished { path, counts } => {
                let i = names.iter().position(|n| *n == path).expect("known path");
                got[i] = Some(counts);
            }
            IoErrEvent::Progress { .. } => {}
            e @ (IoErrEvent::EnqueueFailed { .. } | IoErrEvent::Exited) => panic!("{e:?}"),
        }
    }
    ctx.send(Cmd::Shutdown).expect("send");
    h.join().expect("join");
    got.into_iter().flatten().collect()
}

/// A 120 s test compressed 30x: 4 s sample, 2 s IO timeout (reads sent for 2 s).
fn compressed() -> SampleTime {
    SampleTime::shortened_for_tests(Duration::from_secs(4), Duration::from_secs(2))
}

#[test]
fn measured_error_rate_matches_the_injected_one() {
    let injected = [0u64, 50, 10, 4, 2];
    let files = vec![
        file("good", 0, Duration::ZERO),
        file("every50", 50, Duration::ZERO),
        file("every10", 10, Duration::ZERO),
        file("every4", 4, Duration::ZERO),
        file("every2", 2, Duration::ZERO),
    ];
    let Some(rig) = rig(files, 4) else { return };
    let specs = rig
        .files
        .iter()
        .zip(&rig.loops)
        .map(|(f, l)| TestSpec {
            path: f.name.into(),
            dev_node: l.0.clone(),
            sample_time: compressed(),
            latency_bound: None,
        })
        .collect();
    let counts = measure(specs);
    for ((f, k), c) in rig.files.iter().zip(injected).zip(&counts) {
        let want = if k == 0 { 0.0 } else { 100.0 / k as f64 };
        let got = c.errs as f64 * 100.0 / c.ios as f64;
        println!(
            "{:>8}: injected {want:5.1}%  measured {got:5.2}%  ({} errs / {} reads; fs saw {} reads, failed {})",
            f.name,
            c.errs,
            c.ios,
            f.reads.load(Ordering::SeqCst),
            f.failed.load(Ordering::SeqCst)
        );
        assert!(c.ios >= 320, "{}: too few reads {c:?}", f.name);
        assert!(
            (got - want).abs() <= 2.0,
            "{}: injected {want}% measured {got}%",
            f.name
        );
        assert_eq!(c.errs, c.failed, "{}: only failed reads count", f.name);
        assert_eq!((c.short, c.slow, c.stuck), (0, 0, 0));
    }
}

#[test]
fn slow_reads_count_against_the_latency_bound() {
    let files = vec![file("slow", 0, Duration::from_millis(20))];
    let Some(rig) = rig(files, 8) else { return };
    let dev = rig.loops[0].0.clone();
    let spec = |bound: u64| TestSpec {
        path: "slow".into(),
        dev_node: dev.clone(),
        sample_time: compressed(),
        latency_bound: Some(Duration::from_millis(bound)),
    };
    // every read takes at least 20 ms: all above a 10 ms bound, none above 5 s
    let tight = measure(vec![spec(10)]).remove(0);
    println!("slow disk, 10 ms bound: {tight:?}");
    assert!(tight.ios >= 32);
    // (a read the loaded machine held for a second or more also blocks its slot)
    assert_eq!(
        (tight.errs, tight.slow, tight.failed),
        (tight.ios, tight.ios - tight.blocked, 0)
    );
    let loose = measure(vec![spec(5000)]).remove(0);
    println!("slow disk, 5 s bound: {loose:?}");
    assert!(loose.ios >= 32);
    assert_eq!(loose.errs, 0);
}

/// The same check at the real, uncompressed 120 s sample time (19,200 reads per path).
/// Takes two minutes, so it runs only on request: `cargo test --test marginal_fuse -- --ignored`.
#[test]
#[ignore]
fn full_length_120_second_test_measures_the_injected_rate() {
    let files = vec![file("every10", 10, Duration::ZERO), file("every3", 3, Duration::ZERO)];
    let Some(rig) = rig(files, 4) else { return };
    let specs = rig
        .files
        .iter()
        .zip(&rig.loops)
        .map(|(f, l)| TestSpec {
            path: f.name.into(),
            dev_node: l.0.clone(),
            sample_time: SampleTime::from_config(120),
            latency_bound: None,
        })
        .collect();
    let counts = measure_within(specs, Duration::from_secs(180));
    for ((f, want), c) in rig.files.iter().zip([10.0, 100.0 / 3.0]).zip(&counts) {
        let got = c.errs as f64 * 100.0 / c.ios as f64;
        println!(
            "{:>8} (120 s): injected {want:5.2}%  measured {got:5.2}%  ({} errs / {} reads)",
            f.name, c.errs, c.ios
        );
        assert!(
            (got - want).abs() <= 2.0,
            "{}: injected {want}% measured {got}%",
            f.name
        );
    }
}

/// Descriptors of this process open on `dev`.
fn fds_on(dev: &Path) -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|t| t == dev)
        .count()
}

#[test]
fn stuck_reads_on_a_real_device_count_once_and_are_freed_when_they_return() {
    let Some(rig) = rig(vec![file("hang", 0, Duration::ZERO)], 4) else {
        return;
    };
    let dev = rig.loops[0].0.clone();
    rig.files[0].hang.store(true, Ordering::SeqCst);
    let (ctx, crx) = crossbeam_channel::unbounded();
    let (etx, erx) = crossbeam_channel::unbounded();
    let h = spawn_io_err_stat(crx, etx).expect("spawn");
    let spec = TestSpec {
        path: "hang".into(),
        dev_node: dev.clone(),
        sample_time: compressed(),
        latency_bound: None,
    };
    ctx.send(Cmd::Start(spec)).expect("send");
    let counts = loop {
        match erx.recv_timeout(Duration::from_secs(30)).expect("verdict") {
            IoErrEvent::Finished { counts, .. } => break counts,
            IoErrEvent::Progress { .. } => {}
            e @ (IoErrEvent::EnqueueFailed { .. } | IoErrEvent::Exited) => panic!("{e:?}"),
        }
    };
    println!("hung device: {counts:?}");
    // the test is over, but the reads are still in the kernel: fd and buffers stay
    let fds_while_hung = fds_on(&dev);
    // Let the reads come home before asserting: a failed assertion must not leave
    // this process stuck on reads its own FUSE server no longer serves.
    rig.files[0].hang.store(false, Ordering::SeqCst);
    assert_eq!(fds_while_hung, 1);
    // all 32 slots stuck from the first batch: counted once each, never re-sent; every
    // send tick after the first second counts the 32 reads the hang kept from going
    // out (how many ticks that is depends on the real clock)
    assert_eq!((counts.stuck, counts.ios - counts.blocked), (32, 32), "{counts:?}");
    assert!(counts.blocked > 0 && counts.blocked % 32 == 0, "{counts:?}");
    assert_eq!(counts.errs, counts.ios, "every read counts as failed");
    let t = std::time::Instant::now();
    while fds_on(&dev) > 0 {
        assert!(t.elapsed() < Duration::from_secs(10), "closed path never released");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(erx.try_recv().is_err(), "late completions produced no report");
    ctx.send(Cmd::Shutdown).expect("send");
    h.join().expect("join");
}
