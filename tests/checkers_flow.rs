//! The wiring the daemon does, end to end on a loop device: checker outcomes go
//! through the state machine, its actions come out, and the path is rescheduled
//! with the delay the state machine chose.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crossbeam_channel::unbounded;
use multipathd::checkers::state::{Action, MapContext, MapRecord, PathRecord, PathState, Policy, update_path_state};
use multipathd::checkers::{CheckRequest, CheckerKind, Control, MonotonicClock, spawn_checker_loop};
use multipathd::config::propsel::NoPathRetry;

struct Loop {
    dev: PathBuf,
    backing: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").arg("-d").arg(&self.dev).status();
    }
}

fn loop_device() -> Option<Loop> {
    if !nix::unistd::geteuid().is_root() || !Path::new("/dev/loop-control").exists() {
        eprintln!("skipping: loop devices need root and /dev/loop-control");
        return None;
    }
    let dir = tempfile::Builder::new()
        .prefix("mpd-flow")
        .tempdir_in("/var/tmp")
        .unwrap();
    let backing = dir.path().join("disk.img");
    let mut f = std::fs::File::create(&backing).unwrap();
    f.write_all(&vec![7u8; 1 << 20]).unwrap();
    f.sync_all().unwrap();
    let out = Command::new("losetup")
        .args(["-f", "--show"])
        .arg(&backing)
        .output()
        .unwrap();
    assert!(out.status.success());
    Some(Loop {
        dev: PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()),
        backing,
        _dir: dir,
    })
}

#[test]
fn loop_device_failing_drives_fail_path_and_queueing() {
    let Some(lo) = loop_device() else { return };
    let policy = Policy {
        polling_interval: 5,
        max_polling_interval: 20,
        no_path_retry: NoPathRetry::Retries(2),
        ..Policy::default()
    };
    let (ctl, ctl_rx) = unbounded();
    let (res_tx, res) = unbounded();
    let h = spawn_checker_loop(ctl_rx, res_tx, MonotonicClock, 1).unwrap();
    let req = CheckRequest {
        path: 1,
        dev: lo.dev.clone(),
        sysfs_state: None,
        link: None,
        kind: CheckerKind::Directio,
        timeout: Duration::from_secs(30),
        prio: None,
        pr: None,
    };
    let mut path = PathRecord::new("loop", "7:0", "directio", &policy);
    let mut map = MapRecord::new("mpatha", &policy, true);
    let ctx = MapContext {
        other_active_paths: 0,
        marginal_hold: false,
    };
    let mut now = 0u64;
    let mut step = |path: &mut PathRecord, map: &mut MapRecord| -> Vec<Action> {
        let o = res.recv_timeout(Duration::from_secs(20)).expect("a check result");
        assert_eq!(o.path_id, 1);
        now += 1;
        let u = update_path_state(path, map, &o.result, &ctx, &policy, now);
        *path = u.path;
        *map = u.map;
        // What the daemon does after every outcome: reschedule with the chosen delay.
        ctl.send(Control::Schedule {
            req: req.clone(),
            in_secs: path.tick,
        })
        .unwrap();
        u.actions
    };

    ctl.send(Control::Schedule {
        req: req.clone(),
        in_secs: 0,
    })
    .unwrap();
    let a = step(&mut path, &mut map);
    assert_eq!(path.state, PathState::Up);
    assert!(a.contains(&Action::DmMessage("reinstate_path 7:0".into())), "{a:?}");
    assert_eq!(path.tick, 5);

    // The media goes away; the daemon asks for an immediate check (as on a uevent).
    std::fs::File::options()
        .write(true)
        .open(&lo.backing)
        .unwrap()
        .set_len(0)
        .unwrap();
    assert!(
        Command::new("losetup")
            .arg("-c")
            .arg(&lo.dev)
            .status()
            .unwrap()
            .success()
    );
    ctl.send(Control::CheckNow(1)).unwrap();
    let a = step(&mut path, &mut map);
    assert_eq!(path.state, PathState::Down);
    assert_eq!(
        a,
        vec![
            Action::Log(1, "mpatha: loop - directio checker reports path is down".into()),
            Action::Log(2, "checker failed path 7:0 in map mpatha".into()),
            Action::DmMessage("fail_path 7:0".into()),
            Action::Log(1, "mpatha: Entering recovery mode: max_retries=2".into()),
            Action::Log(2, "mpatha: remaining active paths: 0".into()),
        ]
    );
    assert_eq!(map.retry_tick, 11);

    ctl.send(Control::Remove(1)).unwrap();
    ctl.send(Control::Shutdown).unwrap();
    h.join().unwrap();
}
