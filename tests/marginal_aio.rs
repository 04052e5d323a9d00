//! The kernel-AIO engine and the io-err-stat thread on a real loop device (plain file).
//! Needs root and losetup; skips loudly otherwise.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use multipathd::marginal::aio_engine::AioEngine;
use multipathd::marginal::engine::{Completion, IoEngine};
use multipathd::marginal::sampler::{Counts, SampleTime, TestSpec};
use multipathd::marginal::thread::{Cmd, IoErrEvent, IoErrStat, spawn_io_err_stat};

#[path = "common/skip.rs"]
mod skip;
use skip::skipped;

struct Loop(PathBuf);

impl Loop {
    fn attach(file: &Path) -> Option<Loop> {
        let out = Command::new("losetup")
            .args(["-r", "-f", "--show"])
            .arg(file)
            .output()
            .ok()?;
        if !out.status.success() {
            eprintln!("losetup failed: {}", String::from_utf8_lossy(&out.stderr));
            return None;
        }
        Some(Loop(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())))
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").arg("-d").arg(&self.0).status();
    }
}

fn loop_device() -> Option<(tempfile::TempDir, Loop)> {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = dir.path().join("disk");
    std::fs::write(&f, vec![0x5a; 1 << 20]).expect("write backing file");
    match Loop::attach(&f) {
        Some(l) => Some((dir, l)),
        None => {
            skipped("no loop device (needs root and losetup)");
            None
        }
    }
}

/// Descriptors of this process open on `dev` (other tests use other loop devices).
fn fds_on(dev: &Path) -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|t| t == dev)
        .count()
}

#[test]
fn healthy_loop_device_measures_rate_zero() {
    let Some((_dir, lo)) = loop_device() else {
        return;
    };
    let (ctx, crx) = crossbeam_channel::unbounded();
    let (etx, erx) = crossbeam_channel::unbounded();
    let h = spawn_io_err_stat(crx, etx).expect("spawn");
    let spec = TestSpec {
        path: "loop-good".into(),
        dev_node: lo.0.clone(),
        sample_time: SampleTime::shortened_for_tests(Duration::from_secs(3), Duration::from_secs(1)),
        latency_bound: None,
    };
    ctx.send(Cmd::Start(spec)).expect("send");
    let counts = loop {
        match erx.recv_timeout(Duration::from_secs(30)).expect("verdict within 30 s") {
            IoErrEvent::Finished { path, counts } => {
                assert_eq!(path, "loop-good");
                break counts;
            }
            IoErrEvent::Progress { .. } => {}
            e @ (IoErrEvent::EnqueueFailed { .. } | IoErrEvent::Exited) => panic!("{e:?}"),
        }
    };
    println!("loop device, 2 s of sending: {counts:?}");
    // 2 s at 10 Hz: at most 21 batches of 32; the first batch always goes out
    assert!(counts.ios >= 32 && counts.ios <= 21 * 32, "{counts:?}");
    assert_eq!(
        counts,
        Counts {
            ios: counts.ios,
            ..Counts::default()
        }
    );
    ctx.send(Cmd::Shutdown).expect("send");
    h.join().expect("join");
}

/// The production io-err-stat thread over the kernel AIO engine, eight paths at once
/// (one loop device each): one wait and one reap pass per wake must serve every
/// path. Were a pass to drain only some paths' rings, the others' reads would stay
/// in flight past a second and count as blocked, and those paths would get fewer
/// refills: every path must come out with 0 errors and at least half the reads
/// of the busiest one, itself at least ten full batches (2 s of sending at 10 Hz).
#[test]
fn one_reap_pass_serves_all_paths_in_the_thread_loop() {
    const PATHS: usize = 8;
    let mut devs = Vec::new();
    for _ in 0..PATHS {
        let Some(d) = loop_device() else {
            return;
        };
        devs.push(d);
    }
    let (ctx, crx) = crossbeam_channel::unbounded();
    let (etx, erx) = crossbeam_channel::unbounded();
    let h = spawn_io_err_stat(crx, etx).expect("spawn");
    for (i, (_, lo)) in devs.iter().enumerate() {
        ctx.send(Cmd::Start(TestSpec {
            path: format!("loop{i}"),
            dev_node: lo.0.clone(),
            sample_time: SampleTime::shortened_for_tests(Duration::from_secs(3), Duration::from_secs(1)),
            latency_bound: None,
        }))
        .expect("send");
    }
    let mut done = std::collections::BTreeMap::new();
    while done.len() < PATHS {
        match erx.recv_timeout(Duration::from_secs(30)).expect("verdicts within 30 s") {
            IoErrEvent::Finished { path, counts } => {
                done.insert(path, counts);
            }
            IoErrEvent::Progress { .. } => {}
            e @ (IoErrEvent::EnqueueFailed { .. } | IoErrEvent::Exited) => panic!("{e:?}"),
        }
    }
    ctx.send(Cmd::Shutdown).expect("send");
    h.join().expect("join");
    println!("{PATHS} paths, 2 s of sending each: {done:?}");
    for (path, c) in &done {
        assert_eq!(
            *c,
            Counts {
                ios: c.ios,
                ..Counts::default()
            },
            "{path}: no read may fail, hang or block"
        );
    }
    let most = done.values().map(|c| c.ios).max().unwrap_or(0);
    let least = done.values().map(|c| c.ios).min().unwrap_or(0);
    assert!(most >= 10 * 32, "busiest path got {most} reads");
    assert!(least * 2 >= most, "reads per path from {least} to {most}");
}

#[test]
fn closing_a_path_mid_test_leaks_no_fd_or_iocb() {
    let Some((_dir, lo)) = loop_device() else {
        return;
    };
    let mut eng = AioEngine::new().expect("engine");
    let (a, blk) = eng.open(&lo.0, 32).expect("open");
    assert!(blk >= 512 && blk.is_power_of_two(), "block size {blk}");
    let (b, _) = eng.open(&lo.0, 32).expect("open");
    assert_eq!(fds_on(&lo.0), 2);
    let all: Vec<usize> = (0..32).collect();
    assert_eq!(eng.submit(a, &all).expect("submit"), 32);
    assert_eq!(eng.submit(b, &all).expect("submit"), 32);
    for s in 0..32 {
        eng.cancel(a, s);
    }
    eng.close(a);
    let mut out = Vec::new();
    let t = Instant::now();
    while eng.in_flight() > 0 {
        eng.reap(Duration::from_millis(100), &mut out).expect("reap");
        assert!(t.elapsed() < Duration::from_secs(10), "reads never completed");
    }
    assert!(
        out.iter().all(|c: &Completion| c.key == b && c.res == blk as i64),
        "closed path's completions were reported"
    );
    assert_eq!(out.len(), 32);
    assert_eq!(fds_on(&lo.0), 1, "closed path's fd released");
    eng.close(b);
    assert_eq!(fds_on(&lo.0), 0);
}

#[test]
fn per_pass_cost_with_eight_busy_paths() {
    let Some((_dir, lo)) = loop_device() else {
        return;
    };
    let mut eng = AioEngine::new().expect("engine");
    let keys: Vec<u64> = (0..8).map(|_| eng.open(&lo.0, 32).expect("open").0).collect();
    let all: Vec<usize> = (0..32).collect();
    let mut free: Vec<Vec<usize>> = vec![all.clone(); 8];
    let mut out = Vec::new();
    let mut reaped = 0usize;
    let passes = 300;
    let mut in_reap = Duration::ZERO;
    let t = Instant::now();
    for _ in 0..passes {
        for (i, &k) in keys.iter().enumerate() {
            let n = eng.submit(k, &free[i]).expect("submit");
            free[i].drain(..n);
        }
        out.clear();
        // let the reads land so the pass measures draining, not waiting
        std::thread::sleep(Duration::from_millis(1));
        let r = Instant::now();
        eng.reap(Duration::ZERO, &mut out).expect("reap");
        in_reap += r.elapsed();
        for c in &out {
            let i = keys.iter().position(|k| *k == c.key).expect("known key");
            free[i].push(c.slot);
        }
        reaped += out.len();
    }
    println!(
        "8 paths x 32 reads: {passes} passes in {:?}, {reaped} reads reaped, {:?} per reap pass (all 8 paths)",
        t.elapsed(),
        in_reap / passes
    );
    assert!(reaped >= 8 * 32, "reads were reaped");
    for k in keys {
        eng.close(k);
    }
    while eng.in_flight() > 0 {
        eng.reap(Duration::from_millis(100), &mut out).expect("reap");
    }
}

#[test]
fn lazy_handle_starts_on_first_test_reports_open_failure_and_joins() {
    let (etx, erx) = crossbeam_channel::unbounded();
    let mut io = IoErrStat::new(etx);
    io.cancel_test("sdb").expect("cancel before start is a no-op");
    assert!(!io.is_running());
    let spec = TestSpec {
        path: "sdz".into(),
        dev_node: PathBuf::from("/nonexistent/sdz"),
        sample_time: SampleTime::from_config(120),
        latency_bound: None,
    };
    io.start_test(spec).expect("start");
    assert!(io.is_running());
    match erx.recv_timeout(Duration::from_secs(10)).expect("report") {
        IoErrEvent::EnqueueFailed { path, error } => {
            assert_eq!(path, "sdz");
            assert!(error.contains("No such file or directory"), "{error}");
        }
        e => panic!("unexpected {e:?}"),
    }
    io.shutdown();
    assert!(!io.is_running());
}
