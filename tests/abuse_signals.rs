//! Signals sent to a running daemon: the real signal thread, the real CLI server on a
//! temporary socket and the real state owner and run loop (over a fake sysfs and a
//! device-mapper without maps), in this test process. SIGUSR1, SIGUSR2 and SIGPIPE
//! leave it running and answering; SIGHUP reconfigures (a configuration that does not
//! load keeps the running one); SIGTERM during a reconfigure whose read does not return
//! (a FUSE file that hangs) ends the daemon within a second, the old configuration in
//! force and answered from until then.
//!
//! One test only: signal dispositions belong to the whole process.

mod common;

use std::ffi::OsStr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, UNIX_EPOCH};

use fuser::{
    Config as FuseConfig, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, INodeNo, LockOwner,
    MountOption, OpenFlags, ReplyAttr, ReplyData, ReplyEntry, ReplyOpen, Request,
};

use crossbeam_channel::{bounded, never, unbounded};
use multipathd::cli::protocol::{recv_reply, send_frame};
use multipathd::cli::server::{self, ServerConfig, SocketName};
use multipathd::config::{LoadOptions, parse_str};
use multipathd::daemon::owner::{Env, ExistingMap, Load, MapOps, NewMap, Outputs, Owner, PartitionMap};
use multipathd::daemon::reload::Reloader;
use multipathd::daemon::run::{Inbox, serve};
use multipathd::daemon::signals;
use multipathd::dm::{DmError, MapUdev, Suspend};
use multipathd::marginal::thread::IoErrStat;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use common::FakeSys;

/// A kernel without multipath maps; nothing in this test creates one.
struct NoMaps;

fn gone(name: &str) -> DmError {
    DmError::Ioctl {
        op: "message",
        name: Some(name.to_string()),
        errno: nix::errno::Errno::ENXIO,
    }
}

impl MapOps for NoMaps {
    fn list_maps(&mut self) -> Result<Vec<ExistingMap>, DmError> {
        Ok(Vec::new())
    }
    fn create_map(&mut self, m: &NewMap) -> Result<(u32, Load), DmError> {
        Err(gone(&m.name))
    }
    fn reload_map(&mut self, name: &str, _: u64, _: &str, _: MapUdev, _: Suspend) -> Result<Load, DmError> {
        Err(gone(name))
    }
    fn message(&mut self, name: &str, _: &str) -> Result<(), DmError> {
        Err(gone(name))
    }
    fn status(&mut self, name: &str) -> Result<String, DmError> {
        Err(gone(name))
    }
    fn remove_map(&mut self, name: &str, _: bool) -> Result<(), DmError> {
        Err(gone(name))
    }
    fn open_count(&mut self, name: &str) -> Result<i32, DmError> {
        Err(gone(name))
    }
    fn partition_maps(&mut self, name: &str) -> Result<Vec<PartitionMap>, DmError> {
        Err(gone(name))
    }
    fn suspend(&mut self, name: &str, _: Suspend) -> Result<(), DmError> {
        Err(gone(name))
    }
    fn resume(&mut self, name: &str, _: MapUdev) -> Result<(), DmError> {
        Err(gone(name))
    }
}

fn ask(socket: &SocketName, cmd: &str) -> (String, Duration) {
    let start = Instant::now();
    let deadline = start + Duration::from_secs(10);
    let mut s = std::os::unix::net::UnixStream::connect_addr(&socket.addr().unwrap()).unwrap();
    send_frame(&mut s, cmd, deadline).unwrap();
    let reply = recv_reply(&mut s, deadline).unwrap();
    (reply, start.elapsed())
}

fn signal(sig: Signal) {
    kill(Pid::this(), sig).unwrap();
}

/// Waits until `show config` satisfies `cond`, for at most 10 s.
fn wait_config(socket: &SocketName, what: &str, cond: impl Fn(&str) -> bool) {
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end {
        if cond(&ask(socket, "show config").0) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("show config never showed {what}");
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

/// A one-file FUSE filesystem whose `multipath.conf` does not answer reads while
/// `hang` is set: /etc on a disk or NFS server that stopped answering, the slowest
/// configuration load there is.
struct HangingConf {
    text: &'static [u8],
    hang: Arc<AtomicBool>,
}

fn attr(ino: u64, len: u64) -> FileAttr {
    let dir = ino == 1;
    FileAttr {
        ino: INodeNo(ino),
        size: len,
        blocks: len.div_ceil(512),
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

impl Filesystem for HangingConf {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        if u64::from(parent) == 1 && name == "multipath.conf" {
            reply.entry(
                &Duration::from_secs(60),
                &attr(2, self.text.len() as u64),
                fuser::Generation(0),
            )
        } else {
            reply.error(Errno::ENOENT)
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match u64::from(ino) {
            1 => reply.attr(&Duration::from_secs(60), &attr(1, 0)),
            2 => reply.attr(&Duration::from_secs(60), &attr(2, self.text.len() as u64)),
            _ => reply.error(Errno::ENOENT),
        }
    }

    fn open(&self, _req: &Request, _ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        reply.opened(FileHandle(0), FopenFlags::FOPEN_DIRECT_IO);
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        while self.hang.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(5));
        }
        let start = (offset as usize).min(self.text.len());
        let end = (start + size as usize).min(self.text.len());
        reply.data(&self.text[start..end]);
    }
}

/// Mounts [`HangingConf`]; `None` (skipped loudly) without /dev/fuse or root.
fn mount_hanging(hang: Arc<AtomicBool>) -> Option<(fuser::BackgroundSession, tempfile::TempDir)> {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = FuseConfig::default();
    cfg.mount_options = vec![MountOption::RO, MountOption::FSName("mpath-hang".into())];
    let fs = HangingConf {
        text: b"blacklist {\n\twwid slow-marker\n}\n",
        hang,
    };
    match fuser::spawn_mount(fs, dir.path(), &cfg) {
        Ok(s) => Some((s, dir)),
        Err(e) => {
            eprintln!("!!!!!!!!!!!!!!!!!!!! skipped the hanging reconfigure: cannot mount FUSE: {e}");
            None
        }
    }
}

#[test]
fn signals_leave_the_daemon_running_and_sigterm_ends_a_hanging_reconfigure_at_once() {
    let sys = FakeSys::new();
    let conf = tempfile::tempdir().unwrap();
    let main = conf.path().join("multipath.conf");
    write(&main, "");
    let env = Env {
        sysfs: sys.root(),
        udev_dir: sys.udev(),
        dev_dir: sys.dev(),
        state_dir: sys.state(),
        config: LoadOptions {
            path: main.clone(),
            conf_dir: conf.path().join("conf.d"),
        },
        ..Env::default()
    };
    let (chk_tx, _checker) = unbounded();
    let (ioerr_tx, _) = unbounded();
    let (reload, reloads) = Reloader::new();
    let out = Outputs {
        checker: chk_tx,
        ioerr: IoErrStat::new(ioerr_tx),
        reload,
    };
    let mut owner = Owner::new(
        parse_str("multipath.conf", "").unwrap().config,
        env,
        Box::new(NoMaps),
        out,
    );
    owner.coldplug();

    let (sig_tx, sig_rx) = bounded(16);
    let sig_thread = signals::spawn(sig_tx).unwrap();
    let socket = SocketName::Path(conf.path().join("mpd.sock"));
    let (req_tx, req_rx) = unbounded();
    let srv = server::spawn(
        vec![server::bind(&socket).unwrap()],
        ServerConfig {
            uxsock_timeout: Duration::from_secs(5),
            ..ServerConfig::default()
        },
        req_tx,
    )
    .unwrap();
    let (_checks_tx, checks) = unbounded();
    let (_ioerr_tx, ioerr) = unbounded();
    let inbox = Inbox {
        signals: sig_rx,
        uevents: never(),
        dm_events: never(),
        checks,
        ioerr,
        requests: req_rx,
        reloads,
        // The fake DM reloads on the owner's thread.
        loads: never(),
        status_wanted: never(),
    };
    let daemon: JoinHandle<_> = std::thread::spawn(move || serve(&mut owner, inbox));
    let pid = std::process::id();
    assert_eq!(ask(&socket, "show daemon").0, format!("pid {pid} idle\n"));

    // Upstream's other signals: logged or acted on, never an end.
    for sig in [Signal::SIGUSR2, Signal::SIGUSR1, Signal::SIGPIPE] {
        signal(sig);
        std::thread::sleep(Duration::from_millis(200));
        assert!(!daemon.is_finished(), "{sig} ended the daemon");
        let (reply, took) = ask(&socket, "show daemon");
        assert_eq!(reply, format!("pid {pid} idle\n"), "after {sig}");
        eprintln!("after {sig}: show daemon answered in {took:?}");
    }

    // SIGHUP: the new configuration is read and applied.
    write(&main, "blacklist {\n\twwid first-marker\n}\n");
    signal(Signal::SIGHUP);
    wait_config(&socket, "the new blacklist", |c| c.contains("first-marker"));

    // One that does not load (a FIFO now) keeps the running configuration.
    std::fs::remove_file(&main).unwrap();
    nix::unistd::mkfifo(&main, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
    signal(Signal::SIGHUP);
    std::thread::sleep(Duration::from_millis(300));
    let (reply, took) = ask(&socket, "show daemon");
    assert_eq!(reply, format!("pid {pid} idle\n"), "the FIFO load has ended");
    eprintln!("after a SIGHUP onto a FIFO: show daemon answered in {took:?}");
    assert!(ask(&socket, "show config").0.contains("first-marker"));

    // A reconfigure whose read does not return (multipath.conf on a FUSE file that
    // hangs): the daemon answers meanwhile, from the old configuration, and SIGTERM
    // ends it without waiting for the load.
    let hang = Arc::new(AtomicBool::new(true));
    let Some((session, mnt)) = mount_hanging(hang.clone()) else {
        signal(Signal::SIGTERM);
        assert_eq!(daemon.join().unwrap(), Ok(()));
        return;
    };
    std::fs::remove_file(&main).unwrap();
    std::os::unix::fs::symlink(mnt.path().join("multipath.conf"), &main).unwrap();
    let (reply, _) = ask(&socket, "show daemon");
    assert_eq!(reply, format!("pid {pid} idle\n"));
    signal(Signal::SIGHUP);
    std::thread::sleep(Duration::from_millis(300));
    let (reply, took) = ask(&socket, "show daemon");
    assert_eq!(reply, format!("pid {pid} idle (pending reconfigure)\n"));
    eprintln!("during the hanging reconfigure: show daemon answered in {took:?}");
    assert!(took < Duration::from_secs(1), "{took:?}");
    let (cfg, took) = ask(&socket, "show config");
    assert!(cfg.contains("first-marker") && !cfg.contains("slow-marker"));
    assert!(took < Duration::from_secs(1), "show config took {took:?}");
    std::thread::sleep(Duration::from_millis(700));
    assert!(ask(&socket, "show daemon").0.ends_with("(pending reconfigure)\n"));

    let start = Instant::now();
    signal(Signal::SIGTERM);
    while !daemon.is_finished() {
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "SIGTERM not acted on within 1 s"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let latency = start.elapsed();
    eprintln!("SIGTERM during the hanging reconfigure ended the loop in {latency:?}");
    assert_eq!(daemon.join().unwrap(), Ok(()));
    srv.stop();
    sig_thread.stop();
    // Let the abandoned load finish (its result goes nowhere) before unmounting.
    hang.store(false, Ordering::SeqCst);
    drop(session);
}
