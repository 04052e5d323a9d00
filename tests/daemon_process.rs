//! The daemon as a process under systemd's protocols: socket activation (LISTEN_FDS),
//! readiness and watchdog datagrams (NOTIFY_SOCKET), the control socket listening
//! before coldplug, the process hardening (locked memory, OOM score, SCHED_RR), a
//! panic in any thread ending the process, and the root check.
//!
//! This machine's kernel has no device-mapper, so the daemon cannot run as the real
//! binary here. The test re-runs its own executable as the daemon process
//! (`daemon_process`, ignored in normal runs): it calls the same `run::run` the
//! binary's `main` calls, with an empty in-memory device-mapper, inside a private
//! mount and network namespace (`unshare`) with empty tmpfs over `/run` and `/sys`,
//! so neither the pidfile nor the sockets of anything else on the machine are touched.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram, UnixListener, UnixStream};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use multipathd::cli::protocol::{LEN_SIZE, decode_len, encode};
use multipathd::config::LoadOptions;
use multipathd::daemon::owner::{ExistingMap, Load, MapOps, NewMap, PartitionMap};
use multipathd::dm::{DmError, MapUdev, Suspend};

// ---- the daemon process ------------------------------------------------------

/// A kernel without maps; coldplug's first call (`list_maps`) reports whether the
/// control socket takes connections yet and then takes `MPD_CHILD_COLDPLUG_MS`.
struct NoMaps;

fn gone(op: &'static str, name: &str) -> DmError {
    DmError::Ioctl {
        op,
        name: Some(name.to_string()),
        errno: nix::errno::Errno::ENXIO,
    }
}

impl MapOps for NoMaps {
    fn list_maps(&mut self) -> Result<Vec<ExistingMap>, DmError> {
        if let Ok(p) = std::env::var("MULTIPATH_SOCKET_NAME") {
            match UnixStream::connect(&p) {
                Ok(_) => eprintln!("coldplug starts: control socket accepts connections"),
                Err(e) => eprintln!("coldplug starts: control socket refuses: {e}"),
            }
        }
        if let Some(ms) = std::env::var("MPD_CHILD_COLDPLUG_MS").ok().and_then(|v| v.parse().ok()) {
            std::thread::sleep(Duration::from_millis(ms));
        }
        Ok(Vec::new())
    }
    fn create_map(&mut self, m: &NewMap) -> Result<(u32, Load), DmError> {
        Err(gone("create", &m.name))
    }
    fn reload_map(&mut self, name: &str, _: u64, _: &str, _: MapUdev, _: Suspend) -> Result<Load, DmError> {
        Err(gone("reload", name))
    }
    fn message(&mut self, name: &str, _: &str) -> Result<(), DmError> {
        Err(gone("message", name))
    }
    fn status(&mut self, name: &str) -> Result<String, DmError> {
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
    fn suspend(&mut self, name: &str, _: Suspend) -> Result<(), DmError> {
        Err(gone("suspend", name))
    }
    fn resume(&mut self, name: &str, _: MapUdev) -> Result<(), DmError> {
        Err(gone("resume", name))
    }
}

/// The daemon process of the tests below (`MPD_CHILD=daemon`), or a process whose
/// worker thread panics (`MPD_CHILD=panic`).
#[test]
#[ignore = "run as a child process by the other tests"]
fn daemon_process() {
    let role = std::env::var("MPD_CHILD").expect("started by the other tests of this file");
    if role == "panic" {
        multipathd::daemon::hardening::install_panic_hook();
        std::thread::spawn(|| panic!("a worker thread fails"));
        std::thread::sleep(Duration::from_secs(5));
        std::process::exit(0);
    }
    let argv: Vec<std::ffi::OsString> = ["multipathd", "-d", "-s", "-v3"].iter().map(Into::into).collect();
    let opts = multipathd::daemon::args::parse(&argv).unwrap();
    let conf = PathBuf::from(std::env::var("MPD_CHILD_CONF").unwrap());
    let load = LoadOptions {
        conf_dir: conf.with_extension("d"),
        path: conf,
    };
    let code = multipathd::daemon::run::run(&opts, &load, |_| Ok(Box::new(NoMaps) as Box<dyn MapOps>));
    std::process::exit(code);
}

// ---- harness -----------------------------------------------------------------

fn skip(why: &str) {
    eprintln!("!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!");
    eprintln!("!!!! SKIPPED: {why}");
    eprintln!("!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!");
}

/// Whether this process may make the namespaces the daemon runs in.
fn can_unshare() -> bool {
    Command::new("unshare")
        .args(["--mount", "--net", "--propagation", "private", "true"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// What the test hands the daemon process.
struct Spawn<'a> {
    dir: &'a Path,
    /// Listening sockets passed as fds 3, 4, … with LISTEN_FDS/LISTEN_PID.
    listeners: Vec<RawFd>,
    env: Vec<(&'a str, String)>,
}

/// Starts the daemon process. The shell in between only exports the variables that
/// must name the daemon's own pid, as systemd sets them, then `exec`s it (same pid).
fn spawn(s: Spawn) -> Child {
    let conf = s.dir.join("multipath.conf");
    if !conf.exists() {
        std::fs::write(&conf, "").unwrap();
    }
    let n = s.listeners.len();
    // Above the range they are moved to, so that no dup2 below overwrites another.
    let high: Vec<RawFd> = s
        .listeners
        .iter()
        .map(|fd| nix::fcntl::fcntl(unsafe_borrow(*fd), nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(100)).unwrap())
        .collect();
    let script = if n > 0 {
        format!(
            "mount -t tmpfs none /run && mount -t tmpfs none /sys && export LISTEN_PID=$$ LISTEN_FDS={n} WATCHDOG_PID=$$ && exec \"$@\""
        )
    } else {
        "mount -t tmpfs none /run && mount -t tmpfs none /sys && export WATCHDOG_PID=$$ && exec \"$@\"".to_string()
    };
    let mut cmd = Command::new("unshare");
    cmd.args([
        "--mount",
        "--net",
        "--propagation",
        "private",
        "sh",
        "-c",
        &script,
        "sh",
    ])
    .arg(std::env::current_exe().unwrap())
    .args([
        "--ignored",
        "--exact",
        "daemon_process",
        "--nocapture",
        "--test-threads=1",
    ])
    .env("MPD_CHILD", "daemon")
    .env("MPD_CHILD_CONF", &conf)
    .env_remove("LISTEN_FDS")
    .env_remove("LISTEN_PID")
    .env_remove("NOTIFY_SOCKET")
    .env_remove("WATCHDOG_USEC")
    .env_remove("MULTIPATH_SOCKET_NAME")
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    for (k, v) in &s.env {
        cmd.env(k, v);
    }
    let moved = high.clone();
    // SAFETY: between fork and exec only async-signal-safe calls (dup2, setrlimit).
    unsafe {
        cmd.pre_exec(move || {
            for (i, fd) in moved.iter().enumerate() {
                if libc::dup2(*fd, 3 + i as RawFd) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            // What `LimitRTPRIO=10` in the unit gives the daemon.
            let rt = libc::rlimit {
                rlim_cur: 10,
                rlim_max: 10,
            };
            libc::setrlimit(libc::RLIMIT_RTPRIO, &rt);
            Ok(())
        });
    }
    let child = cmd.spawn().expect("spawn the daemon process");
    for fd in high {
        // SAFETY: these duplicates were made above and are owned here only.
        drop(unsafe { OwnedFd::from_raw_fd(fd) });
    }
    child
}

fn unsafe_borrow(fd: RawFd) -> std::os::fd::BorrowedFd<'static> {
    // SAFETY: the caller keeps the listener open for the whole spawn.
    unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) }
}

/// The datagrams the daemon sends to NOTIFY_SOCKET, in order.
struct Notify {
    sock: UnixDatagram,
    seen: Vec<(Instant, String)>,
}

impl Notify {
    fn bind(dir: &Path) -> (Notify, String) {
        let path = dir.join("notify");
        let sock = UnixDatagram::bind(&path).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        (Notify { sock, seen: Vec::new() }, path.display().to_string())
    }

    /// Reads datagrams until `done` holds for what was seen, or the time is up.
    fn until(&mut self, limit: Duration, done: impl Fn(&[(Instant, String)]) -> bool) -> bool {
        let end = Instant::now() + limit;
        let mut buf = [0u8; 4096];
        while !done(&self.seen) {
            if Instant::now() >= end {
                return false;
            }
            if let Ok(n) = self.sock.recv(&mut buf) {
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                for line in text.lines() {
                    self.seen.push((Instant::now(), line.to_string()));
                }
            }
        }
        true
    }

    /// Reads what has arrived so far without waiting.
    fn drain(&mut self) {
        self.sock.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 4096];
        while let Ok(n) = self.sock.recv(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            self.seen.extend(text.lines().map(|l| (Instant::now(), l.to_string())));
        }
        self.sock.set_nonblocking(false).unwrap();
    }

    fn count(seen: &[(Instant, String)], what: &str) -> usize {
        seen.iter().filter(|(_, l)| l == what).count()
    }

    fn first(&self, what: &str) -> Option<Instant> {
        self.seen.iter().find(|(_, l)| l == what).map(|(t, _)| *t)
    }
}

/// Sends `cmd` and waits for the reply.
fn ask(stream: &mut UnixStream, cmd: &str) -> String {
    stream.write_all(&encode(cmd)).unwrap();
    read_reply(stream)
}

fn read_reply(stream: &mut UnixStream) -> String {
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut hdr = [0u8; LEN_SIZE];
    stream.read_exact(&mut hdr).expect("reply header");
    let mut body = vec![0u8; decode_len(hdr)];
    stream.read_exact(&mut body).expect("reply body");
    String::from_utf8_lossy(&body)
        .trim_end_matches(['\0', '\n'])
        .to_string()
}

/// SIGTERM, then the exit status and everything the process wrote to stderr.
fn stop(mut child: Child) -> (std::process::ExitStatus, String) {
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::SIGTERM);
    let end = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > end {
            let _ = child.kill();
            break child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    (status, err)
}

fn proc_field(pid: u32, file: &str, key: &str) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/{file}")).ok()?;
    text.lines().find_map(|l| {
        l.strip_prefix(key)
            .map(|v| v.trim_start_matches([':', ' ', '\t']).trim().to_string())
    })
}

// ---- tests -------------------------------------------------------------------

/// Socket activation as `multipathd.socket` does it: two listening sockets (the
/// abstract name and a pathname), a client that connected and sent its command
/// before the daemon existed is answered, both sockets serve; READY=1 comes once
/// coldplug is done and WATCHDOG=1 every WATCHDOG_USEC/2 (1 s here) after it; SIGTERM
/// sends STOPPING=1 and exits 0. The hardening is checked on the running process.
#[test]
fn socket_activation_readiness_watchdog_and_hardening() {
    if !nix::unistd::getuid().is_root() || !can_unshare() {
        skip("needs root and unshare(1) with mount and network namespaces");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (mut notify, notify_path) = Notify::bind(dir.path());
    let path_sock = dir.path().join("multipathd.socket");
    let by_path = UnixListener::bind(&path_sock).unwrap();
    let abstract_name = format!("multipathd-test-{}", std::process::id());
    let by_name = UnixListener::bind_addr(&SocketAddr::from_abstract_name(abstract_name.as_bytes()).unwrap()).unwrap();

    // Connected and asked before the daemon runs: systemd's socket holds it.
    let mut early = UnixStream::connect(&path_sock).unwrap();
    early.write_all(&encode("show daemon")).unwrap();

    let child = spawn(Spawn {
        dir: dir.path(),
        listeners: vec![by_name.as_raw_fd(), by_path.as_raw_fd()],
        env: vec![
            ("NOTIFY_SOCKET", notify_path),
            ("WATCHDOG_USEC", "2000000".into()),
            ("MPD_CHILD_COLDPLUG_MS", "300".into()),
        ],
    });
    drop(by_name);
    drop(by_path);
    let pid = child.id();
    let ready = notify.until(Duration::from_secs(20), |s| {
        Notify::count(s, "READY=1") == 1 && Notify::count(s, "WATCHDOG=1") >= 3
    });
    let early_reply = read_reply(&mut early);
    let mut again =
        UnixStream::connect_addr(&SocketAddr::from_abstract_name(abstract_name.as_bytes()).unwrap()).unwrap();
    let by_abstract = ask(&mut again, "show daemon");
    let mut p = UnixStream::connect(&path_sock).unwrap();
    let by_pathname = ask(&mut p, "show daemon");
    let locked = proc_field(pid, "status", "VmLck");
    let oom = std::fs::read_to_string(format!("/proc/{pid}/oom_score_adj")).unwrap_or_default();
    let policy = proc_field(pid, "sched", "policy");
    let rtprio_granted = std::fs::read_to_string(format!("/proc/{pid}/limits"))
        .unwrap_or_default()
        .lines()
        .any(|l| l.starts_with("Max realtime priority") && l.split_whitespace().nth(4) == Some("10"));
    let (status, stderr) = stop(child);
    assert!(ready, "notifications: {:?}\nstderr:\n{stderr}", notify.seen);
    notify.until(Duration::from_secs(2), |s| Notify::count(s, "STOPPING=1") == 1);

    assert_eq!(early_reply, format!("pid {pid} idle"), "{stderr}");
    assert_eq!(by_abstract, format!("pid {pid} idle"), "{stderr}");
    assert_eq!(by_pathname, format!("pid {pid} idle"), "{stderr}");

    // Readiness after coldplug, then a ping per second, then the stop.
    let lines: Vec<&str> = notify.seen.iter().map(|(_, l)| l.as_str()).collect();
    assert_eq!(lines.first(), Some(&"STATUS=configure"), "{lines:?}");
    let ready_at = lines.iter().position(|l| *l == "READY=1").unwrap();
    let first_ping = lines.iter().position(|l| *l == "WATCHDOG=1").unwrap();
    assert!(ready_at < first_ping, "{lines:?}");
    assert_eq!(lines.last(), Some(&"STOPPING=1"), "{lines:?}");
    let pings: Vec<Instant> = notify
        .seen
        .iter()
        .filter(|(_, l)| l == "WATCHDOG=1")
        .map(|(t, _)| *t)
        .collect();
    for w in pings.windows(2) {
        let gap = w[1] - w[0];
        assert!(
            gap >= Duration::from_millis(700) && gap <= Duration::from_millis(1600),
            "pings {gap:?} apart"
        );
    }
    assert!(notify.first("READY=1").is_some());

    assert!(status.success(), "exit {status:?}\n{stderr}");
    let locked_kb: u64 = locked
        .as_deref()
        .and_then(|v| v.trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    assert!(locked_kb > 1024, "VmLck {locked:?}: memory not locked\n{stderr}");
    // Lowering the score needs CAP_SYS_RESOURCE, which some containers withhold;
    // then upstream's error is logged.
    assert!(
        oom.trim() == "-1000" || stderr.contains("couldn't adjust oom score"),
        "oom_score_adj {oom:?}\n{stderr}"
    );
    // SCHED_RR is 2; where the container refuses it, upstream's notice is logged.
    // Raising RLIMIT_RTPRIO (LimitRTPRIO=) needs CAP_SYS_RESOURCE as well.
    if rtprio_granted {
        assert!(
            policy.as_deref() == Some("2") || stderr.contains("Could not set SCHED_RR at priority 10"),
            "policy {policy:?}\n{stderr}"
        );
    } else {
        assert_eq!(policy.as_deref(), Some("0"), "SCHED_RR without LimitRTPRIO");
        skip("SCHED_RR: this container does not let the test grant RLIMIT_RTPRIO");
    }
}

/// Without socket activation the daemon binds its socket before coldplug starts: a
/// client connecting during coldplug is queued and answered once it is over.
#[test]
fn control_socket_listens_before_coldplug() {
    if !nix::unistd::getuid().is_root() || !can_unshare() {
        skip("needs root and unshare(1) with mount and network namespaces");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (mut notify, notify_path) = Notify::bind(dir.path());
    let sock = dir.path().join("ctl");
    let child = spawn(Spawn {
        dir: dir.path(),
        listeners: Vec::new(),
        env: vec![
            ("NOTIFY_SOCKET", notify_path),
            ("MULTIPATH_SOCKET_NAME", sock.display().to_string()),
            ("MPD_CHILD_COLDPLUG_MS", "1500".into()),
        ],
    });
    let pid = child.id();
    let end = Instant::now() + Duration::from_secs(20);
    let mut stream = loop {
        if let Ok(s) = UnixStream::connect(&sock) {
            break Some(s);
        }
        if Instant::now() > end {
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    notify.drain();
    let ready_before_connect = notify.first("READY=1").is_some();
    let reply = stream.as_mut().map(|s| ask(s, "show daemon"));
    notify.drain();
    let ready_before_reply = notify.first("READY=1").is_some();
    let (status, stderr) = stop(child);
    assert!(stream.is_some(), "never listened\n{stderr}");
    assert!(
        stderr.contains("coldplug starts: control socket accepts connections"),
        "{stderr}"
    );
    assert_eq!(reply.as_deref(), Some(format!("pid {pid} idle").as_str()), "{stderr}");
    // Connected during coldplug (1.5 s), answered once it was over.
    assert!(
        !ready_before_connect && ready_before_reply,
        "{:?}\n{stderr}",
        notify.seen
    );
    assert!(status.success(), "{status:?}\n{stderr}");
}

/// A panic in a thread other than main ends the whole process with SIGABRT, so that
/// systemd sees a failure and restarts the daemon.
#[test]
fn a_panic_in_any_thread_aborts_the_process() {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "daemon_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("MPD_CHILD", "panic")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.signal(), Some(libc::SIGABRT), "{:?}\n{stderr}", out.status);
    assert!(stderr.contains("a worker thread fails"), "{stderr}");
}

/// As upstream, the daemon refuses to start for anyone but root, in upstream's words;
/// client mode is not refused.
#[test]
fn the_daemon_needs_root() {
    if !nix::unistd::getuid().is_root() {
        skip("needs root to run the binary as another user");
        return;
    }
    let out = Command::new(env!("CARGO_BIN_EXE_multipathd"))
        .arg("-d")
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&out.stderr), "need to be root\n");
    let out = Command::new(env!("CARGO_BIN_EXE_multipathd"))
        .args(["show", "daemon"])
        .env("MULTIPATH_SOCKET_NAME", "/nonexistent/multipathd.socket")
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&out.stderr).contains("need to be root"));
}
