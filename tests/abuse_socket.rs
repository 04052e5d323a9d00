//! The control socket under abuse by an unprivileged local user, against the real CLI
//! server thread and the real state owner (`run::serve`, a fake device-mapper, a fake
//! sysfs): root is answered within 1 s while the abuse runs, the daemon is alive
//! afterwards, and what the abuse made the server hold is given back.
//!
//! The abusing client runs as uid 65534 in a child process (this test binary again,
//! its ignored `abusing_client` entry point); without root the tests skip loudly.

mod common;
#[path = "common/skip.rs"]
mod skip;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, unbounded};
use multipathd::cli::parse::Command;
use multipathd::cli::protocol::{recv_reply, send_frame};
use multipathd::cli::server::{ServerConfig, ServerStats, SocketName, bind, spawn};
use multipathd::config::parse_str;
use multipathd::daemon::owner::{
    Env, ExistingMap, Load, LoadDone, LoadKind, MapOps, NewMap, Outputs, Owner, PartitionMap,
};
use multipathd::daemon::reload::Reloader;
use multipathd::dm::{DmError, MapUdev, Suspend};
use multipathd::marginal::thread::IoErrStat;

use common::daemon::{self, Served};
use common::dm::gone;
use common::{FakeSys, lun_wwid};
use skip::skipped;

const NOBODY: u32 = 65534;
const ROLE: &str = "ABUSE_ROLE";
const SOCKET: &str = "ABUSE_SOCKET";
/// The commands of the `hold` role, one a line.
const CMDS: &str = "ABUSE_CMDS";

/// The warnings logged in this test process, to count how often a limit is reported.
struct Warnings(Mutex<Vec<String>>);

impl log::Log for Warnings {
    fn enabled(&self, m: &log::Metadata) -> bool {
        m.level() <= log::Level::Warn
    }
    fn log(&self, r: &log::Record) {
        if self.enabled(r.metadata()) {
            self.0.lock().unwrap().push(r.args().to_string());
        }
    }
    fn flush(&self) {}
}

static WARNINGS: Warnings = Warnings(Mutex::new(Vec::new()));

/// How many warnings logged so far contain `text`.
fn warnings_with(text: &str) -> usize {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        log::set_logger(&WARNINGS).expect("no other logger in this test binary");
        log::set_max_level(log::LevelFilter::Warn);
    });
    WARNINGS.0.lock().unwrap().iter().filter(|w| w.contains(text)).count()
}

/// Maps are created and reloaded; while `hang_status` is set their status read hangs
/// (the owner is busy); while `hold_loads` is set a reload runs on (as the daemon's
/// port runs one off the owner's thread) until the test sends its end.
struct FakeDm {
    hang_status: Arc<AtomicBool>,
    hold_loads: Arc<AtomicBool>,
}

impl MapOps for FakeDm {
    fn list_maps(&mut self) -> Result<Vec<ExistingMap>, DmError> {
        Ok(Vec::new())
    }
    fn create_map(&mut self, _: &NewMap) -> Result<(u32, Load), DmError> {
        Ok((0, Load::Done))
    }
    fn reload_map(&mut self, _: &str, _: u64, _: &str, _: MapUdev, _: Suspend) -> Result<Load, DmError> {
        Ok(if self.hold_loads.load(Ordering::Relaxed) {
            Load::Running
        } else {
            Load::Done
        })
    }
    fn message(&mut self, _: &str, _: &str) -> Result<(), DmError> {
        Ok(())
    }
    fn status(&mut self, name: &str) -> Result<String, DmError> {
        if self.hang_status.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_secs(3));
        }
        Err(gone("status", name))
    }
    fn remove_map(&mut self, name: &str, _: bool) -> Result<(), DmError> {
        Err(gone("remove", name))
    }
    fn open_count(&mut self, name: &str) -> Result<i32, DmError> {
        Err(gone("info", name))
    }
    fn partition_maps(&mut self, name: &str) -> Result<Vec<PartitionMap>, DmError> {
        Err(gone("list", name))
    }
    fn suspend(&mut self, _: &str, _: Suspend) -> Result<(), DmError> {
        Ok(())
    }
    fn resume(&mut self, _: &str, _: MapUdev) -> Result<(), DmError> {
        Ok(())
    }
}

/// A configuration with many device sections, so that `show config` is large.
fn big_config() -> String {
    let mut s = String::from("defaults {\n find_multipaths greedy\n}\ndevices {\n");
    for i in 0..1500 {
        s.push_str(&format!(
            " device {{\n  vendor \"VENDOR{i:05}\"\n  product \"PRODUCT{i:05}\"\n  revision \"1.0\"\n  \
             product_blacklist \"LUN_Z\"\n  alias_prefix \"mpx\"\n  path_checker tur\n  no_path_retry 12\n  \
             path_grouping_policy group_by_prio\n  path_selector \"service-time 0\"\n  prio alua\n  \
             failback immediate\n  rr_weight uniform\n  rr_min_io 100\n  rr_min_io_rq 1\n  \
             fast_io_fail_tmo 5\n  dev_loss_tmo 60\n  hardware_handler \"1 alua\"\n  features \"0\"\n  \
             detect_prio yes\n }}\n"
        ));
    }
    s.push_str("}\n");
    s
}

/// The daemon's owner loop and CLI server, on an abstract socket.
struct Daemon {
    _sys: FakeSys,
    name: SocketName,
    served: Served,
    stats: Arc<ServerStats>,
    hang_status: Arc<AtomicBool>,
    hold_loads: Arc<AtomicBool>,
}

impl Daemon {
    /// One LUN seen through two hosts (sda, sdb).
    fn start(tag: &str, cfg: ServerConfig) -> Daemon {
        Daemon::start_with(tag, cfg, 1)
    }

    /// `luns` LUNs, each seen through two hosts: two paths per map.
    fn start_with(tag: &str, cfg: ServerConfig, luns: u32) -> Daemon {
        let sys = FakeSys::new();
        sys.add_luns(luns, 2);
        let env = Env {
            sysfs: sys.root(),
            udev_dir: sys.udev(),
            dev_dir: sys.dev(),
            state_dir: sys.state(),
            ..Env::default()
        };
        let (chk_tx, chk_rx) = unbounded();
        let (ioerr_tx, _) = unbounded();
        let config = parse_str("multipath.conf", &big_config()).expect("parses").config;
        let (reload, reloads) = Reloader::new();
        let out = Outputs {
            checker: chk_tx,
            ioerr: IoErrStat::new(ioerr_tx),
            reload,
        };
        let hang_status = Arc::new(AtomicBool::new(false));
        let hold_loads = Arc::new(AtomicBool::new(false));
        let dm = FakeDm {
            hang_status: Arc::clone(&hang_status),
            hold_loads: Arc::clone(&hold_loads),
        };
        let mut owner = Owner::new(config, env, Box::new(dm), out);
        owner.coldplug();
        assert_eq!(owner.counts(), (2 * luns as usize, luns as usize), "two paths per map");
        let name = SocketName::Abstract(format!("/test/multipathd-abuse/{}/{tag}", std::process::id()));
        let served = daemon::start(owner, chk_rx, reloads, bind(&name).unwrap(), cfg);
        Daemon {
            _sys: sys,
            stats: served.server.stats(),
            name,
            served,
            hang_status,
            hold_loads,
        }
    }

    fn connect(&self) -> UnixStream {
        UnixStream::connect_addr(&self.name.addr().unwrap()).unwrap()
    }

    /// Root's command on a new connection: the reply and how long it took.
    fn root_asks(&self, cmd: &str) -> (String, Duration) {
        asks(&self.name, cmd)
    }

    /// Root's latency for each of `cmds` sampled every 100 ms for `dur`; the worst.
    fn root_latency_during(&self, dur: Duration, cmds: &[&str]) -> Duration {
        let end = Instant::now() + dur;
        let mut worst = Duration::ZERO;
        while Instant::now() < end {
            for c in cmds {
                let (reply, took) = self.root_asks(c);
                assert!(
                    !reply.starts_with("error") && reply != "fail\ntimeout\n",
                    "{c}: {reply:?}"
                );
                worst = worst.max(took);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        worst
    }

    fn wait_until(&self, what: &str, secs: u64, done: impl Fn(&ServerStats) -> bool) {
        let end = Instant::now() + Duration::from_secs(secs);
        while !done(&self.stats) {
            assert!(Instant::now() < end, "{what}: {:?}", self.stats);
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The owner still answers (a command it runs itself), then shuts down cleanly.
    fn alive_then_stop(self) {
        let (reply, took) = self.root_asks("reconfigure");
        assert_eq!(reply, "ok\n");
        assert!(took < Duration::from_secs(1), "reconfigure took {took:?}");
        self.served.stop();
    }
}

/// A command on a new connection to `name`: the reply and how long it took.
fn asks(name: &SocketName, cmd: &str) -> (String, Duration) {
    let t = Instant::now();
    let mut s = UnixStream::connect_addr(&name.addr().unwrap()).unwrap();
    let deadline = t + Duration::from_secs(10);
    send_frame(&mut s, cmd, deadline).unwrap();
    let r = recv_reply(&mut s, deadline).unwrap_or_else(|e| format!("error: {e}"));
    (r, t.elapsed())
}

fn root_or_skip() -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    skipped(&format!("needs root to run the abuser as uid {NOBODY}"));
    false
}

/// Starts the abusing client as uid 65534.
fn abuser(d: &Daemon, role: &str, secs: u64) -> std::process::Child {
    let SocketName::Abstract(name) = &d.name else {
        unreachable!()
    };
    std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "abusing_client",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ROLE, format!("{role}:{secs}"))
        .env(SOCKET, name)
        .uid(NOBODY)
        .gid(NOBODY)
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("start the abuser")
}

/// As uid 65534: sends each of `cmds` on its own connection, holds them all for `secs`
/// without reading, then reads each reply; the replies (or the errors), in order.
fn nobody_asks(name: &SocketName, cmds: &[String], secs: u64) -> std::thread::JoinHandle<Vec<String>> {
    let SocketName::Abstract(name) = name else {
        unreachable!()
    };
    let child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "abusing_client",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ROLE, format!("hold:{secs}"))
        .env(SOCKET, name)
        .env(CMDS, cmds.join("\n"))
        .uid(NOBODY)
        .gid(NOBODY)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start the abuser");
    std::thread::spawn(move || {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "the abuser failed");
        // The harness may print on the same line: take what follows the marker.
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .filter_map(|l| l.split_once("REPLY ").map(|(_, r)| r.to_string()))
            .collect()
    })
}

fn vm_rss_kb() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = s.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn an_idle_connection_flood_by_another_user_leaves_root_a_slot() {
    if !root_or_skip() {
        return;
    }
    // A small server (1,000 slots) so that the flood fills it quickly.
    let d = Daemon::start(
        "idle",
        ServerConfig {
            max_clients: 1000,
            ..ServerConfig::default()
        },
    );
    let mut child = abuser(&d, "idle", 6);
    d.wait_until("the flood is refused", 20, |s| {
        s.refused_connections.load(Ordering::Relaxed) >= 1000
    });
    let held = d.stats.clients.load(Ordering::Relaxed);
    assert!(held <= 64 + 1, "uid {NOBODY} holds {held} connections");
    let worst = d.root_latency_during(Duration::from_secs(2), &["show paths", "show maps"]);
    assert!(worst < Duration::from_secs(1), "root waited {worst:?}");
    assert!(child.wait().unwrap().success());
    d.wait_until("the flood's connections are gone", 5, |s| {
        s.clients.load(Ordering::Relaxed) == 0
    });
    eprintln!("idle flood: root worst {worst:?}, held by the flood {held}");
    d.alive_then_stop();
}

#[test]
fn a_show_and_hang_up_loop_by_another_user_does_not_delay_root() {
    if !root_or_skip() {
        return;
    }
    let d = Daemon::start("loop", ServerConfig::default());
    let rss0 = vm_rss_kb();
    let mut child = abuser(&d, "loop", 5);
    std::thread::sleep(Duration::from_millis(300));
    let worst = d.root_latency_during(
        Duration::from_secs(3),
        &["show paths", "show maps json", "show config", "add map mpatha"],
    );
    assert!(worst < Duration::from_secs(1), "root waited {worst:?}");
    assert!(child.wait().unwrap().success());
    d.wait_until("replies given back", 5, |s| {
        s.clients.load(Ordering::Relaxed) == 0 && s.reply_bytes.load(Ordering::Relaxed) == 0
    });
    let grown = vm_rss_kb().saturating_sub(rss0);
    eprintln!("show loop: root worst {worst:?}, RSS grew {grown} kB");
    assert!(grown < 64 * 1024, "RSS grew by {grown} kB");
    d.alive_then_stop();
}

#[test]
fn slow_readers_of_a_large_reply_share_it_and_a_reader_still_reading_gets_it_whole() {
    let d = Daemon::start(
        "slow",
        ServerConfig {
            uxsock_timeout: Duration::from_secs(2),
            ..ServerConfig::default()
        },
    );
    let (whole, _) = d.root_asks("show config");
    // Far more than a socket buffer holds (about 200 kB).
    assert!(whole.len() > 700_000, "show config is {} bytes", whole.len());
    let rss0 = vm_rss_kb();
    // 500 readers that never read their reply.
    let hogs: Vec<UnixStream> = (0..500)
        .map(|_| {
            let mut s = d.connect();
            send_frame(&mut s, "show config", Instant::now() + Duration::from_secs(5)).unwrap();
            s
        })
        .collect();
    d.wait_until("every hog has its reply", 10, |s| {
        s.clients.load(Ordering::Relaxed) == 500
    });
    std::thread::sleep(Duration::from_millis(200));
    let held = d.stats.reply_bytes.load(Ordering::Relaxed);
    assert!(held < 3 * whole.len(), "{held} reply bytes buffered for 500 readers");
    let grown = vm_rss_kb().saturating_sub(rss0);
    assert!(grown < 64 * 1024, "RSS grew by {grown} kB for 500 readers");
    // One reader takes 16 kB every 100 ms: far longer than the 2 s timeout in all.
    let mut slow = d.connect();
    send_frame(&mut slow, "show config", Instant::now() + Duration::from_secs(5)).unwrap();
    let mut got = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    slow.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let started = Instant::now();
    loop {
        let n = slow.read(&mut buf).unwrap();
        got.extend_from_slice(&buf[..n]);
        if n == 0 || got.len() > 8 + whole.len() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let took = started.elapsed();
    assert!(took > Duration::from_secs(3), "read in {took:?}, not slowly");
    assert_eq!(got.len(), 8 + whole.len() + 1, "cut off mid-reply after {took:?}");
    assert_eq!(&got[8..8 + whole.len()], whole.as_bytes());
    // Root is answered meanwhile, and the hogs are dropped once their reply is overdue.
    let (_, t) = d.root_asks("show paths");
    assert!(t < Duration::from_secs(1));
    d.wait_until("hogs dropped and replies freed", 10, |s| {
        s.reply_bytes.load(Ordering::Relaxed) == 0
    });
    drop((hogs, slow));
    d.wait_until("connections closed", 5, |s| s.clients.load(Ordering::Relaxed) == 0);
    eprintln!("slow readers: {held} bytes buffered for 500, RSS grew {grown} kB, slow read {took:?}");
    d.alive_then_stop();
}

#[test]
fn shows_are_answered_while_the_owner_is_busy() {
    let d = Daemon::start("busy", ServerConfig::default());
    // A command that reads group states gets the owner to read every map's status,
    // which now hangs for 3 s at a time.
    d.hang_status.store(true, Ordering::Relaxed);
    let worst = d.root_latency_during(
        Duration::from_secs(2),
        &["show maps topology", "show paths", "show maps json"],
    );
    d.hang_status.store(false, Ordering::Relaxed);
    assert!(worst < Duration::from_secs(1), "root waited {worst:?}");
    eprintln!("busy owner: root worst {worst:?}");
    // Let the hung reads finish, then the owner answers again.
    std::thread::sleep(Duration::from_secs(4));
    d.alive_then_stop();
}

/// A reload that waits in the kernel (its suspend behind IO on a hung path) runs off the
/// owner's thread: root's other commands are answered meanwhile, what would wait behind
/// the suspend is refused, and `reload map` itself is answered when the reload ended.
#[test]
fn a_reload_waiting_for_io_holds_up_only_its_own_reply() {
    let d = Daemon::start("held-load", ServerConfig::default());
    d.hold_loads.store(true, Ordering::Relaxed);
    let name = d.name.clone();
    let wwid = lun_wwid(0);
    // Its reply and when it arrived: after the load ended, however slowly this thread ran.
    let reload = std::thread::spawn(move || {
        let (reply, _) = asks(&name, &format!("reload map {}", lun_wwid(0)));
        (reply, Instant::now())
    });
    std::thread::sleep(Duration::from_millis(500));
    assert!(!reload.is_finished(), "answered before the reload ended");
    let (reply, took) = d.root_asks("fail path sda");
    assert_eq!(reply, "ok\n");
    assert!(took < Duration::from_secs(1), "fail path took {took:?}");
    assert_eq!(
        d.root_asks(&format!("del map {wwid}")).0,
        "fail\nmap or partition in use\n"
    );
    assert!(!reload.is_finished());
    let ended = Instant::now();
    d.served
        .loads
        .send(LoadDone {
            map: wwid,
            kind: LoadKind::Reload,
            result: Ok(()),
            took: Duration::from_secs(40),
        })
        .unwrap();
    let (reply, arrived) = reload.join().unwrap();
    assert_eq!(reply, "ok\n");
    assert!(arrived >= ended, "answered {:?} before the load ended", ended - arrived);
    d.hold_loads.store(false, Ordering::Relaxed);
    d.alive_then_stop();
}

#[test]
fn over_the_reply_budget_another_users_shows_are_refused_and_roots_are_answered() {
    if !root_or_skip() {
        return;
    }
    const BUDGET: usize = 2 << 20;
    // 512 paths: a `show paths format` reply of about 250 kB, more than a socket buffer
    // holds, so each client that does not read keeps its reply buffered in the server.
    let d = Daemon::start_with(
        "budget",
        ServerConfig {
            reply_budget: BUDGET,
            uxsock_timeout: Duration::from_secs(10),
            ..ServerConfig::default()
        },
        256,
    );
    // A different format each, so that no two replies share a buffer.
    let show = |i: usize| format!("show paths format \"{i:05} {} %d\"", "x".repeat(440));
    let (one, _) = d.root_asks(&show(99_999));
    assert!(one.len() > 220_000, "the reply is {} bytes", one.len());
    let report = format!("exceed {BUDGET} bytes; refusing uid {NOBODY}'s");
    let logged = warnings_with(&report);
    let hogs = nobody_asks(&d.name, &(0..40).map(show).collect::<Vec<_>>(), 4);
    d.wait_until("the other user's 40 connections are in", 10, |s| {
        s.clients.load(Ordering::Relaxed) == 40
    });
    std::thread::sleep(Duration::from_millis(300));
    let held = d.stats.reply_bytes.load(Ordering::Relaxed);
    assert!(
        held <= BUDGET + one.len() + 40 * 16,
        "{held} reply bytes buffered for uid {NOBODY}, budget {BUDGET}"
    );
    // Over the budget, root is still answered in full, and at once.
    let (reply, took) = d.root_asks(&show(99_998));
    assert_eq!(reply.len(), one.len());
    assert!(took < Duration::from_secs(1), "root waited {took:?}");
    // ... while another request of the other user's is refused.
    let refused = nobody_asks(&d.name, &[show(40)], 0).join().unwrap();
    assert_eq!(refused, [format!("{:?}", "fail\n")]);
    assert_eq!(warnings_with(&report) - logged, 1, "the limit is logged once per user");
    let replies = hogs.join().unwrap();
    assert_eq!(replies.len(), 40);
    let answered = replies.iter().filter(|r| r.len() > one.len()).count();
    let failed = replies.iter().filter(|r| **r == format!("{:?}", "fail\n")).count();
    assert_eq!(answered + failed, 40, "{replies:?}");
    assert!(
        (1..=BUDGET / one.len() + 1).contains(&answered),
        "{answered} of 40 answered with {} bytes each",
        one.len()
    );
    d.wait_until("replies given back", 5, |s| s.reply_bytes.load(Ordering::Relaxed) == 0);
    eprintln!("reply budget: {held} bytes held for uid {NOBODY}, {answered} of 40 answered, root took {took:?}");
    d.alive_then_stop();
}

#[test]
fn another_user_has_at_most_four_requests_at_a_blocked_owner_and_roots_get_through() {
    if !root_or_skip() {
        return;
    }
    // As while the owner runs coldplug: nothing published yet, so every show goes to the
    // owner's queue, and nothing is taken off it. A queue of 16: without the per-user
    // limit the other user's 40 requests would fill it and hold root's back.
    let (_publisher, feed) = multipathd::cli::snapshot::channel().unwrap();
    let (req_tx, req_rx) = bounded(16);
    let name = SocketName::Abstract(format!("/test/multipathd-abuse/{}/inflight", std::process::id()));
    let server = spawn(
        vec![bind(&name).unwrap()],
        ServerConfig {
            uxsock_timeout: Duration::from_secs(3),
            views: Some(feed),
            ..ServerConfig::default()
        },
        req_tx,
    )
    .unwrap();
    let stats = server.stats();
    let report = format!("uid {NOBODY} has 4 requests waiting");
    let logged = warnings_with(&report);
    let nobody = nobody_asks(&name, &vec!["show paths".to_string(); 40], 4);
    let end = Instant::now() + Duration::from_secs(10);
    while stats.clients.load(Ordering::Relaxed) < 40 {
        assert!(Instant::now() < end, "{stats:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(req_rx.len(), 4, "requests of uid {NOBODY} queued at the owner");
    let addr = name.addr().unwrap();
    let root = std::thread::spawn(move || {
        let t = Instant::now();
        let mut s = UnixStream::connect_addr(&addr).unwrap();
        let deadline = t + Duration::from_secs(5);
        send_frame(&mut s, "show maps", deadline).unwrap();
        let r = recv_reply(&mut s, deadline).unwrap_or_else(|e| format!("error: {e}"));
        (r, t.elapsed())
    });
    // The owner takes its queue: the other user's requests (left unanswered), then root's.
    let mut held = Vec::new();
    let root_req = loop {
        let r = req_rx
            .recv_timeout(Duration::from_secs(1))
            .expect("root's request reaches the owner");
        if r.cmd == Command::ShowMaps {
            break r;
        }
        held.push(r);
    };
    root_req.reply.send("root's answer\n".to_string()).unwrap();
    let (reply, took) = root.join().unwrap();
    assert_eq!(reply, "root's answer\n");
    assert!(took < Duration::from_secs(1), "root waited {took:?}");
    assert_eq!(held.len(), 4);
    assert!(held.iter().all(|r| r.cmd == Command::ShowPaths));
    std::thread::sleep(Duration::from_millis(300));
    assert!(req_rx.is_empty(), "more requests of uid {NOBODY} were passed on");
    assert_eq!(warnings_with(&report) - logged, 1, "the limit is logged once per user");
    // Never answered: the held-back requests time out like the ones at the owner.
    let replies = nobody.join().unwrap();
    assert_eq!(replies, vec![format!("{:?}", "fail\ntimeout\n"); 40]);
    eprintln!("in flight: 4 of uid {NOBODY}'s 40 requests at the owner, root took {took:?}");
    drop(held);
    server.stop();
}

/// Not a test: the abusing client the tests above start as uid 65534.
#[test]
#[ignore = "run by the abuse tests as another user"]
fn abusing_client() {
    let role = std::env::var(ROLE).expect("started by an abuse test");
    let (role, secs) = role.split_once(':').unwrap();
    let end = Instant::now() + Duration::from_secs(secs.parse().unwrap());
    let name = SocketName::Abstract(std::env::var(SOCKET).unwrap());
    let addr = name.addr().unwrap();
    match role {
        "idle" => {
            use nix::sys::resource::{Resource, getrlimit, setrlimit};
            let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
            setrlimit(Resource::RLIMIT_NOFILE, hard.min(8192), hard).unwrap();
            let held: Vec<UnixStream> = (0..2000).filter_map(|_| UnixStream::connect_addr(&addr).ok()).collect();
            while Instant::now() < end {
                std::thread::sleep(Duration::from_millis(100));
            }
            drop(held);
        }
        "loop" => {
            let threads: Vec<_> = (0..4)
                .map(|i| {
                    let addr = addr.clone();
                    std::thread::spawn(move || {
                        let cmds = ["show config", "show maps topology", "show paths"];
                        let mut n = 0usize;
                        while Instant::now() < end {
                            if let Ok(mut s) = UnixStream::connect_addr(&addr) {
                                let cmd = cmds[(n + i) % cmds.len()];
                                let mut frame = (cmd.len() + 1).to_ne_bytes().to_vec();
                                frame.extend_from_slice(cmd.as_bytes());
                                frame.push(0);
                                let _ = s.write_all(&frame);
                            }
                            n += 1;
                        }
                    })
                })
                .collect();
            for t in threads {
                t.join().unwrap();
            }
        }
        "hold" => {
            let cmds = std::env::var(CMDS).unwrap();
            let deadline = || Instant::now() + Duration::from_secs(5);
            let mut held: Vec<Option<UnixStream>> = cmds
                .lines()
                .map(|cmd| {
                    let mut s = UnixStream::connect_addr(&addr).ok()?;
                    send_frame(&mut s, cmd, deadline()).ok()?;
                    Some(s)
                })
                .collect();
            while Instant::now() < end {
                std::thread::sleep(Duration::from_millis(50));
            }
            for s in &mut held {
                let reply = match s {
                    Some(s) => recv_reply(s, deadline()).unwrap_or_else(|e| format!("error: {e}")),
                    None => "error: not sent".to_string(),
                };
                println!("REPLY {reply:?}");
            }
        }
        other => panic!("unknown role {other}"),
    }
}
