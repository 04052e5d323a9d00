//! The directio checker against real block devices: loop devices over files.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use multipathd::checkers::directio::{DirectioEngine, DirectioResult};
use multipathd::checkers::state::PathState;

#[path = "common/skip.rs"]
mod skip;
use skip::skipped;

/// A loop device over a file, detached on drop.
struct Loop {
    dev: PathBuf,
    backing: PathBuf,
    _dir: tempfile::TempDir,
}

impl Loop {
    /// None when this machine has no loop devices (not root, no loop driver);
    /// where they exist, any setup failure fails the test.
    fn new(size: usize) -> Option<Loop> {
        if !nix::unistd::geteuid().is_root() || !Path::new("/dev/loop-control").exists() {
            skipped("loop devices need root and /dev/loop-control");
            return None;
        }
        // /var/tmp: tmpfs (often /tmp) refuses O_DIRECT.
        let dir = tempfile::Builder::new()
            .prefix("mpd-directio")
            .tempdir_in("/var/tmp")
            .unwrap();
        let backing = dir.path().join("disk.img");
        let mut f = std::fs::File::create(&backing).unwrap();
        f.write_all(&vec![0xa5u8; size]).unwrap();
        f.sync_all().unwrap();
        let out = Command::new("losetup")
            .args(["-f", "--show"])
            .arg(&backing)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "losetup: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let dev = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        Some(Loop {
            dev,
            backing,
            _dir: dir,
        })
    }

    /// Shrinks the backing file to nothing and tells the loop driver, so that a
    /// read at offset 0 returns no data: the device is gone for the checker.
    fn empty(&self) {
        std::fs::File::options()
            .write(true)
            .open(&self.backing)
            .unwrap()
            .set_len(0)
            .unwrap();
        let st = Command::new("losetup").arg("-c").arg(&self.dev).status().unwrap();
        assert!(st.success());
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").arg("-d").arg(&self.dev).status();
    }
}

/// Polls until `n` results arrived (a hung test fails after 10 s of wall time).
fn collect(engine: &mut DirectioEngine, n: usize) -> Vec<DirectioResult> {
    let give_up = Instant::now() + Duration::from_secs(10);
    let mut got = Vec::new();
    while got.len() < n {
        assert!(Instant::now() < give_up, "only {} of {n} results", got.len());
        got.extend(engine.poll(Instant::now()));
        if got.len() < n {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    got
}

fn check(engine: &mut DirectioEngine, id: u64, dev: &Path) -> DirectioResult {
    assert_eq!(engine.start(id, dev, Instant::now(), Duration::from_secs(30)), None);
    let r = collect(engine, 1).remove(0);
    assert_eq!(r.path, id);
    r
}

#[test]
fn loop_device_up_then_down_when_its_media_goes_away() {
    let Some(lo) = Loop::new(1 << 20) else { return };
    let mut engine = DirectioEngine::new(128).unwrap();
    let r = check(&mut engine, 7, &lo.dev);
    assert_eq!(r.verdict.state, PathState::Up);
    assert_eq!(r.verdict.message, " reports path is up");
    assert_eq!(engine.in_flight(), 0);

    lo.empty();
    let r = check(&mut engine, 7, &lo.dev);
    assert_eq!(r.verdict.state, PathState::Down);
    assert_eq!(r.verdict.message, " reports path is down");
}

#[test]
fn many_paths_in_one_batch() {
    let Some(lo) = Loop::new(1 << 20) else { return };
    let mut engine = DirectioEngine::new(512).unwrap();
    let now = Instant::now();
    for id in 0..300u64 {
        assert_eq!(engine.start(id, &lo.dev, now, Duration::from_secs(30)), None);
    }
    let mut got = collect(&mut engine, 300);
    got.sort_by_key(|r| r.path);
    assert_eq!(
        got.iter().map(|r| r.path).collect::<Vec<_>>(),
        (0..300).collect::<Vec<_>>()
    );
    assert!(got.iter().all(|r| r.verdict.state == PathState::Up));
    // More checks than AIO slots: the surplus waits in the queue, none is lost.
    let mut small = DirectioEngine::new(16).unwrap();
    for id in 0..100u64 {
        assert_eq!(small.start(id, &lo.dev, now, Duration::from_secs(30)), None);
    }
    let got = collect(&mut small, 100);
    assert!(got.iter().all(|r| r.verdict.state == PathState::Up), "{got:?}");
}

#[test]
fn missing_device_is_down_at_once() {
    let mut engine = DirectioEngine::new(4).unwrap();
    let v = engine.start(
        1,
        Path::new("/dev/does-not-exist-mpd"),
        Instant::now(),
        Duration::from_secs(1),
    );
    assert_eq!(v.map(|v| v.state), Some(PathState::Down));
    assert_eq!(engine.in_flight(), 0);
}

#[test]
fn a_check_asked_again_while_running_is_pending() {
    let Some(lo) = Loop::new(1 << 20) else { return };
    let mut engine = DirectioEngine::new(4).unwrap();
    let now = Instant::now();
    assert_eq!(engine.start(3, &lo.dev, now, Duration::from_secs(30)), None);
    // Not polled yet, so the first read cannot have been reaped.
    let again = engine.start(3, &lo.dev, now, Duration::from_secs(30));
    assert_eq!(again.map(|v| v.state), Some(PathState::Pending));
    assert_eq!(collect(&mut engine, 1)[0].verdict.state, PathState::Up);
}
