//! The checker thread end to end: control messages in, outcomes out.

use std::collections::HashSet;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, unbounded};
use multipathd::checkers::state::PathState;
use multipathd::checkers::{
    CheckOutcome, CheckRequest, CheckerKind, Control, Link, MonotonicClock, spawn_checker_loop,
};
use multipathd::discovery::prio::{OpenAttrs, Prio, PrioJob};
use multipathd::discovery::{Hcil, SysfsRoot};
use std::sync::Arc;

/// Generous bound for a result to arrive; hitting it fails the test.
const WAIT: Duration = Duration::from_secs(20);

struct Loop {
    dev: PathBuf,
    _dir: tempfile::TempDir,
}

impl Loop {
    fn new() -> Option<Loop> {
        if !nix::unistd::geteuid().is_root() || !Path::new("/dev/loop-control").exists() {
            eprintln!("skipping: loop devices need root and /dev/loop-control");
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("mpd-loop")
            .tempdir_in("/var/tmp")
            .unwrap();
        let backing = dir.path().join("disk.img");
        let mut f = std::fs::File::create(&backing).unwrap();
        f.write_all(&vec![1u8; 1 << 20]).unwrap();
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
        Some(Loop {
            dev: PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()),
            _dir: dir,
        })
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").arg("-d").arg(&self.dev).status();
    }
}

fn start() -> (Sender<Control>, Receiver<CheckOutcome>, std::thread::JoinHandle<()>) {
    let (ctx, crx) = unbounded();
    let (rtx, rrx) = unbounded();
    let h = spawn_checker_loop(crx, rtx, MonotonicClock, 2).unwrap();
    (ctx, rrx, h)
}

fn req(path: u64, dev: &Path, kind: CheckerKind, sysfs: Option<PathBuf>) -> CheckRequest {
    CheckRequest {
        path,
        dev: dev.to_path_buf(),
        sysfs_state: sysfs,
        link: None,
        kind,
        timeout: Duration::from_secs(5),
        prio: None,
        pr: None,
    }
}

fn stop(ctl: Sender<Control>, h: std::thread::JoinHandle<()>) {
    ctl.send(Control::Shutdown).unwrap();
    h.join().unwrap();
}

#[test]
fn directio_tur_and_readsector0_on_a_loop_device() {
    let Some(lo) = Loop::new() else { return };
    let (ctl, res, h) = start();
    ctl.send(Control::Schedule {
        req: req(1, &lo.dev, CheckerKind::Directio, None),
        in_secs: 0,
    })
    .unwrap();
    let o = res.recv_timeout(WAIT).unwrap();
    assert_eq!((o.path_id, o.result.state), (1, PathState::Up));
    // A loop device has no SCSI passthrough: tur and readsector0 cannot judge it.
    ctl.send(Control::Schedule {
        req: req(2, &lo.dev, CheckerKind::Tur, None),
        in_secs: 0,
    })
    .unwrap();
    let o = res.recv_timeout(WAIT).unwrap();
    assert_eq!(
        (o.path_id, o.result.state, o.result.message.as_str()),
        (2, PathState::Wild, " doesn't support this device")
    );
    ctl.send(Control::Schedule {
        req: req(3, &lo.dev, CheckerKind::Readsector0, None),
        in_secs: 0,
    })
    .unwrap();
    let o = res.recv_timeout(WAIT).unwrap();
    assert_eq!((o.path_id, o.result.state), (3, PathState::Wild));
    stop(ctl, h);
}

/// The loop refreshes a usable path's priority on a worker after every check, also
/// for checkers that answer without the pool (`none` here), and reports it with the
/// verdict: an ALUA state change reaches the owner at the next check.
#[test]
fn priority_is_refreshed_with_every_usable_check() {
    let root = tempfile::tempdir().unwrap();
    let device = root.path().join("sys/block/sdq/device");
    std::fs::create_dir_all(&device).unwrap();
    std::fs::write(device.join("state"), "running\n").unwrap();
    std::fs::write(device.join("access_state"), "active/optimized\n").unwrap();
    let prio = PrioJob {
        prio: Prio::Sysfs,
        args: String::new(),
        unless_ana: None,
        dev: "sdq".to_string(),
        hcil: Hcil {
            host: 3,
            channel: 0,
            target: 0,
            lun: 1,
        },
        serial: String::new(),
        root: SysfsRoot::new(root.path()),
        dev_dir: root.path().join("dev"),
        attrs: OpenAttrs::default(),
    };
    let (ctl, res, h) = start();
    let mut r = req(9, Path::new("/dev/null"), CheckerKind::None, Some(device.join("state")));
    r.prio = Some(Arc::new(prio));
    ctl.send(Control::Schedule { req: r, in_secs: 0 }).unwrap();
    let o = res.recv_timeout(WAIT).unwrap();
    assert_eq!((o.path_id, o.result.state, o.prio), (9, PathState::Up, Some(50)));
    // The controller fails over: this port goes standby.
    std::fs::write(device.join("access_state"), "standby\n").unwrap();
    ctl.send(Control::CheckNow(9)).unwrap();
    let o = res.recv_timeout(WAIT).unwrap();
    assert_eq!((o.result.state, o.prio), (PathState::Up, Some(1)));
    // A path the check finds down reports no priority.
    std::fs::write(device.join("state"), "offline\n").unwrap();
    ctl.send(Control::CheckNow(9)).unwrap();
    let o = res.recv_timeout(WAIT).unwrap();
    assert_eq!((o.result.state, o.prio), (PathState::Down, None));
    stop(ctl, h);
}

#[test]
fn sysfs_state_gates_the_checker_and_none_reports_up() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::write(&state, "offline\n").unwrap();
    let (ctl, res, h) = start();
    let r = req(5, Path::new("/dev/null"), CheckerKind::None, Some(state.clone()));
    ctl.send(Control::Schedule {
        req: r.clone(),
        in_secs: 0,
    })
    .unwrap();
    assert_eq!(res.recv_timeout(WAIT).unwrap().result.state, PathState::Down);
    std::fs::write(&state, "running\n").unwrap();
    ctl.send(Control::CheckNow(5)).unwrap();
    let o = res.recv_timeout(WAIT).unwrap();
    assert_eq!((o.path_id, o.result.state), (5, PathState::Up));
    std::fs::write(&state, "blocked\n").unwrap();
    ctl.send(Control::CheckNow(5)).unwrap();
    assert_eq!(res.recv_timeout(WAIT).unwrap().result.state, PathState::Pending);
    // Removed paths are not checked any more, even when asked.
    ctl.send(Control::Remove(5)).unwrap();
    ctl.send(Control::CheckNow(5)).unwrap();
    assert!(res.recv_timeout(Duration::from_millis(300)).is_err());
    stop(ctl, h);
}

/// After an outcome that changed nothing of a path's request, the owner sends only when
/// to check it again: the loop checks it then with the request it kept, and ignores a
/// path it does not have.
#[test]
fn again_checks_a_known_path_later_with_the_request_it_has() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::write(&state, "running\n").unwrap();
    let (ctl, res, h) = start();
    let r = req(7, Path::new("/dev/null"), CheckerKind::None, Some(state.clone()));
    ctl.send(Control::Schedule { req: r, in_secs: 0 }).unwrap();
    assert_eq!(res.recv_timeout(WAIT).unwrap().result.state, PathState::Up);
    let sent = std::time::Instant::now();
    ctl.send(Control::Again { path: 7, in_secs: 2 }).unwrap();
    let o = res.recv_timeout(WAIT).expect("checked again");
    assert_eq!((o.path_id, o.result.state), (7, PathState::Up));
    assert!(sent.elapsed() >= Duration::from_millis(1900), "{:?}", sent.elapsed());
    // Unknown, or removed: not checked.
    ctl.send(Control::Again { path: 8, in_secs: 0 }).unwrap();
    ctl.send(Control::Remove(7)).unwrap();
    ctl.send(Control::Again { path: 7, in_secs: 0 }).unwrap();
    assert!(res.recv_timeout(Duration::from_millis(1500)).is_err());
    stop(ctl, h);
}

#[test]
fn a_usable_path_going_offline_is_checked_at_once_not_at_its_turn() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::write(&state, "running\n").unwrap();
    let (ctl, res, h) = start();
    let r = req(6, Path::new("/dev/null"), CheckerKind::None, Some(state.clone()));
    ctl.send(Control::Schedule {
        req: r.clone(),
        in_secs: 0,
    })
    .unwrap();
    assert_eq!(res.recv_timeout(WAIT).unwrap().result.state, PathState::Up);
    // As the owner does after an up verdict: the next check in 300 s.
    ctl.send(Control::Schedule {
        req: r.clone(),
        in_secs: 300,
    })
    .unwrap();
    // blocked is transient (pending): no early check for it
    std::fs::write(&state, "blocked\n").unwrap();
    assert!(
        res.recv_timeout(Duration::from_millis(2500)).is_err(),
        "blocked triggered a check"
    );
    std::fs::write(&state, "offline\n").unwrap();
    let o = res
        .recv_timeout(WAIT)
        .expect("the offline device was not checked before its turn");
    assert_eq!(
        (o.path_id, o.result.state, o.result.offline),
        (6, PathState::Down, true)
    );
    // Found offline, it is watched for its device running again: checked at once then,
    // not at its turn; while it stays offline, not reported again.
    ctl.send(Control::Schedule { req: r, in_secs: 300 }).unwrap();
    assert!(
        res.recv_timeout(Duration::from_millis(2500)).is_err(),
        "an offline path was reported again"
    );
    std::fs::write(&state, "running\n").unwrap();
    let o = res
        .recv_timeout(WAIT)
        .expect("the device running again was not checked before its turn");
    assert_eq!((o.path_id, o.result.state, o.result.offline), (6, PathState::Up, false));
    stop(ctl, h);
}

/// A path down for its checker's reasons (not its sysfs state) is left to its schedule.
#[test]
fn a_path_down_by_its_checker_is_not_swept() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::write(&state, "running\n").unwrap();
    let (ctl, res, h) = start();
    // tur on a file that is no SCSI device: the check fails, the device runs
    let r = req(
        7,
        dir.path().join("state").as_path(),
        CheckerKind::Tur,
        Some(state.clone()),
    );
    ctl.send(Control::Schedule {
        req: r.clone(),
        in_secs: 0,
    })
    .unwrap();
    let o = res.recv_timeout(WAIT).unwrap();
    assert!(!o.result.state.is_usable() && !o.result.offline, "{:?}", o.result);
    ctl.send(Control::Schedule { req: r, in_secs: 300 }).unwrap();
    assert!(
        res.recv_timeout(Duration::from_millis(2500)).is_err(),
        "a path down by its checker was checked before its turn"
    );
    stop(ctl, h);
}

/// A clock that stands still: the loop's once-a-second sweep never comes round, so
/// whatever is checked was asked for or found by something else.
struct StoppedClock(std::time::Instant);

impl multipathd::checkers::Clock for StoppedClock {
    fn now(&self) -> std::time::Instant {
        self.0
    }
}

/// A host's link lost: all its devices go offline at once, and when one of its usable
/// paths is found so (here its check after DM failed it), the others of that host are
/// read and checked at once, before any sweep; another host's paths are left alone.
#[test]
fn a_path_found_offline_has_the_other_paths_of_its_host_checked_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let (ctl, crx) = unbounded();
    let (rtx, res) = unbounded();
    let h = spawn_checker_loop(crx, rtx, StoppedClock(std::time::Instant::now()), 2).unwrap();
    let host = |id: u64| {
        if id <= 300 {
            Link::ScsiHost(2)
        } else {
            Link::ScsiHost(3)
        }
    };
    let state = |id: u64| dir.path().join(format!("state{id}"));
    for id in 1..=600 {
        std::fs::write(state(id), "running\n").unwrap();
        let mut r = req(id, Path::new("/dev/null"), CheckerKind::None, Some(state(id)));
        r.link = Some(host(id));
        ctl.send(Control::Schedule { req: r, in_secs: 0 }).unwrap();
    }
    for _ in 1..=600 {
        assert_eq!(res.recv_timeout(WAIT).unwrap().result.state, PathState::Up);
    }
    // As the owner does after an up verdict: the next checks far away.
    for id in 1..=600 {
        ctl.send(Control::Again { path: id, in_secs: 300 }).unwrap();
    }
    for id in 1..=300 {
        std::fs::write(state(id), "offline\n").unwrap();
    }
    ctl.send(Control::CheckNow(17)).unwrap();
    let mut down = HashSet::new();
    for _ in 1..=300 {
        let o = res.recv_timeout(WAIT).expect("a path of the lost host not checked");
        assert_eq!(
            (o.result.state, o.result.offline),
            (PathState::Down, true),
            "path {}",
            o.path_id
        );
        assert!(o.path_id <= 300, "path {} of the other host checked", o.path_id);
        down.insert(o.path_id);
    }
    assert_eq!(down.len(), 300);
    assert!(res.recv_timeout(Duration::from_millis(300)).is_err(), "more checked");
    stop(ctl, h);
}

#[test]
fn missing_device_is_down() {
    let (ctl, res, h) = start();
    let r = req(9, Path::new("/dev/mpd-no-such-disk"), CheckerKind::Tur, None);
    ctl.send(Control::Schedule { req: r, in_secs: 0 }).unwrap();
    let o = res.recv_timeout(WAIT).unwrap();
    assert_eq!(
        (o.path_id, o.result.state, o.result.message.as_str()),
        (9, PathState::Down, " reports path is down")
    );
    stop(ctl, h);
}

#[test]
fn four_thousand_paths_all_get_exactly_one_result() {
    let Some(lo) = Loop::new() else { return };
    let (ctl, res, h) = start();
    for id in 0..4096u64 {
        // Half directio on the loop device, half the none checker.
        let kind = if id % 2 == 0 {
            CheckerKind::Directio
        } else {
            CheckerKind::None
        };
        ctl.send(Control::Schedule {
            req: req(id, &lo.dev, kind, None),
            in_secs: 0,
        })
        .unwrap();
    }
    let mut seen = HashSet::new();
    for _ in 0..4096 {
        let o = res.recv_timeout(WAIT).unwrap();
        assert_eq!(o.result.state, PathState::Up, "path {}", o.path_id);
        assert!(seen.insert(o.path_id), "path {} reported twice", o.path_id);
    }
    // Nothing more until rescheduled.
    assert!(res.recv_timeout(Duration::from_millis(300)).is_err());
    stop(ctl, h);
}

#[test]
fn a_directio_completion_is_delivered_at_once_not_at_a_poll_tick() {
    // A regular file where O_DIRECT works: /var/tmp, as tmpfs has none.
    let dir = tempfile::Builder::new()
        .prefix("mpd-loop")
        .tempdir_in("/var/tmp")
        .unwrap();
    let file = dir.path().join("disk.img");
    std::fs::write(&file, vec![1u8; 1 << 16]).unwrap();
    if let Err(e) = std::fs::File::options()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(&file)
    {
        eprintln!("\n*** SKIPPED: no O_DIRECT on /var/tmp ({e}) ***\n");
        return;
    }
    let (ctl, res, h) = start();
    ctl.send(Control::Schedule {
        req: req(1, &file, CheckerKind::Directio, None),
        in_secs: 0,
    })
    .unwrap();
    let mut took = Vec::new();
    for _ in 0..41 {
        let o = res.recv_timeout(WAIT).unwrap();
        assert_eq!((o.path_id, o.result.state), (1, PathState::Up));
        took.push(o.took);
        ctl.send(Control::CheckNow(1)).unwrap();
    }
    stop(ctl, h);
    // A read reaped in the round that submitted it took "0": only the others show
    // how soon a completion wakes the loop.
    took.retain(|t| !t.is_zero());
    took.sort();
    println!("directio checks that waited for a wake-up: {took:?}");
    if took.len() < 5 {
        eprintln!("\n*** SKIPPED: almost every read completed within its round ***\n");
        return;
    }
    let median = took[took.len() / 2];
    // Reaping on a 10 ms poll made each of these take about 10 ms.
    assert!(median < Duration::from_millis(5), "median {median:?}: {took:?}");
}
