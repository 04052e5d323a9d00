//! ioload: O_DIRECT reads on many block devices at once, from one process, for lab scenarios
//! that keep IO running on dozens of multipath maps (a shell loop per map forks a `dd` per
//! read, which under TCG costs more CPU than the daemons being measured).
//!
//! usage: ioload INTERVAL_MS STOPFILE DEV...
//!     One thread per DEV reads 4 KiB with O_DIRECT every INTERVAL_MS, at successive offsets
//!     in the first 16 MiB (or the whole device when smaller), while STOPFILE exists.  A failed read prints
//!     `UPTIME DEV error: WHY` at once.  When STOPFILE is gone, reads still in flight get
//!     30 s to end, then one line per DEV: `DEV reads= errors= slowest_ms= in_flight=`
//!     (in_flight=1: its last read had not returned).

use std::alloc::{Layout, alloc_zeroed, dealloc};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

const BLOCK: usize = 4096;
const SPAN: u64 = 4096; // blocks: reads cycle through the first 16 MiB at most

#[derive(Default)]
struct Tally {
    reads: u64,
    errors: u64,
    slowest: Duration,
    in_flight: bool,
}

/// One 4 KiB buffer aligned for O_DIRECT.
struct Aligned(*mut u8);

impl Aligned {
    fn layout() -> Layout {
        Layout::from_size_align(BLOCK, BLOCK).expect("4 KiB aligned layout")
    }
    fn new() -> Aligned {
        // SAFETY: the layout has a non-zero size.
        let p = unsafe { alloc_zeroed(Self::layout()) };
        assert!(!p.is_null(), "out of memory");
        Aligned(p)
    }
    fn as_mut(&mut self) -> &mut [u8] {
        // SAFETY: p points to BLOCK bytes owned by self.
        unsafe { std::slice::from_raw_parts_mut(self.0, BLOCK) }
    }
}

impl Drop for Aligned {
    fn drop(&mut self) {
        // SAFETY: allocated in new() with the same layout.
        unsafe { dealloc(self.0, Self::layout()) }
    }
}

fn uptime() -> String {
    std::fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .unwrap_or_default()
}

/// How many blocks the reads cycle through: a read past the device's end returns 0 bytes,
/// which is not an IO error of the device (scsi_debug's LUNs are 8 MiB: at 0.5 s a read,
/// 2,048 reads went past it: 23 minutes of reads in a uevent storm at 4,096 paths).
fn span(file: &mut File) -> std::io::Result<u64> {
    use std::io::{Seek, SeekFrom};
    let size = file.seek(SeekFrom::End(0))?;
    match (size / BLOCK as u64).min(SPAN) {
        0 => Err(std::io::Error::other(format!(
            "{size} bytes, less than one {BLOCK}-byte read"
        ))),
        n => Ok(n),
    }
}

fn reader(dev: String, file: File, span: u64, every: Duration, stop: String, tally: Arc<Mutex<Tally>>) {
    let mut buf = Aligned::new();
    let mut block = 0u64;
    while Path::new(&stop).exists() {
        let t0 = Instant::now();
        tally.lock().expect("tally").in_flight = true;
        let res = file.read_at(buf.as_mut(), block * BLOCK as u64);
        let took = t0.elapsed();
        let mut t = tally.lock().expect("tally");
        t.in_flight = false;
        t.reads += 1;
        t.slowest = t.slowest.max(took);
        match res {
            Ok(n) if n == BLOCK => {}
            Ok(n) => {
                t.errors += 1;
                println!("{} {dev} error: short read of {n} bytes", uptime());
            }
            Err(e) => {
                t.errors += 1;
                println!("{} {dev} error: {e}", uptime());
            }
        }
        drop(t);
        block = (block + 1) % span;
        thread::sleep(every);
    }
}

/// One descriptor a device: at 1,024 maps past the usual soft limit. The soft limit goes
/// up to the hard one, which needs no privilege; `Err` when even that is too few.
fn fit_fd_limit(devs: usize) -> Result<(), String> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let want = devs as u64 + 64; // stdio, the allocator's and the runtime's own
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).map_err(|e| format!("getrlimit: {e}"))?;
    if soft >= want {
        return Ok(());
    }
    if hard < want {
        return Err(format!(
            "{devs} devices need {want} descriptors, the hard limit is {hard}"
        ));
    }
    setrlimit(Resource::RLIMIT_NOFILE, want, hard).map_err(|e| format!("setrlimit: {e}"))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(ms), Some(stop)) = (args.first().and_then(|a| a.parse::<u64>().ok()), args.get(1)) else {
        eprintln!("usage: ioload INTERVAL_MS STOPFILE DEV...");
        return ExitCode::from(2);
    };
    let devs = &args[2..];
    if let Err(e) = fit_fd_limit(devs.len()) {
        eprintln!("ioload: open file limit: {e}");
        return ExitCode::FAILURE;
    }
    let mut tallies = Vec::new();
    for dev in devs {
        let opened = OpenOptions::new().read(true).custom_flags(libc::O_DIRECT).open(dev);
        let (file, blocks) = match opened.and_then(|mut f| span(&mut f).map(|n| (f, n))) {
            Ok(f) => f,
            Err(e) => {
                eprintln!("ioload: {dev}: {e}");
                return ExitCode::FAILURE;
            }
        };
        let tally = Arc::new(Mutex::new(Tally::default()));
        let (d, s, t) = (dev.clone(), stop.clone(), tally.clone());
        // Detached: a read that never returns must not keep the summary from being printed.
        thread::spawn(move || reader(d, file, blocks, Duration::from_millis(ms), s, t));
        tallies.push((dev, tally));
    }
    while Path::new(stop).exists() {
        thread::sleep(Duration::from_millis(200));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline && tallies.iter().any(|(_, t)| t.lock().expect("tally").in_flight) {
        thread::sleep(Duration::from_millis(100));
    }
    for (dev, t) in &tallies {
        let t = t.lock().expect("tally");
        println!(
            "{dev} reads={} errors={} slowest_ms={} in_flight={}",
            t.reads,
            t.errors,
            t.slowest.as_millis(),
            u8::from(t.in_flight)
        );
    }
    ExitCode::SUCCESS
}
