//! The socket server under normal use and abuse, on a temporary pathname socket with
//! a fake state owner; plus the client against it.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, unbounded};
use multipathd::cli::client::{ClientMode, run_with};
use multipathd::cli::parse::{Command, help_text};
use multipathd::cli::protocol::{FrameError, LEN_SIZE, recv_reply, send_frame};
use multipathd::cli::server::{Reply, Request, ServerConfig, ServerHandle, SocketName, bind, spawn};

const BIG: usize = 8 * 1024 * 1024;

struct Harness {
    _dir: tempfile::TempDir,
    name: SocketName,
    server: Option<ServerHandle>,
    owner: Option<JoinHandle<()>>,
    /// Commands the fake owner saw.
    seen: Arc<Mutex<Vec<Command>>>,
}

/// Fake state owner: answers from a fixed table; `show daemon` never gets an answer
/// (the sender is kept alive), `shutdown` drops the sender unanswered.
fn owner(rx: Receiver<Request>, seen: Arc<Mutex<Vec<Command>>>) {
    let mut parked: Vec<Reply> = Vec::new();
    for req in rx {
        seen.lock().unwrap().push(req.cmd.clone());
        let text = match &req.cmd {
            Command::ShowPaths => "paths\n".to_string(),
            Command::ShowMapsJson => "x".repeat(BIG),
            Command::AddPath { path } if path == "sdz" => "blacklisted\n".to_string(),
            Command::AddPath { .. } => String::new(),
            Command::DelMap { .. } => "fail\nmap or partition in use\n".to_string(),
            Command::ShowDaemon => {
                parked.push(req.reply);
                continue;
            }
            Command::Shutdown => continue,
            other => format!("{other:?}\n"),
        };
        // The server may have given up on this request already; that is fine.
        let _ = req.reply.send(text);
    }
}

impl Harness {
    fn new(cfg: ServerConfig) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let name = SocketName::Path(dir.path().join("mpd.sock"));
        let listener = bind(&name).unwrap();
        let (tx, rx) = unbounded();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let seen2 = seen.clone();
        let owner = std::thread::spawn(move || owner(rx, seen2));
        let server = spawn(vec![listener], cfg, tx).unwrap();
        Harness {
            _dir: dir,
            name,
            server: Some(server),
            owner: Some(owner),
            seen,
        }
    }

    fn connect(&self) -> UnixStream {
        UnixStream::connect_addr(&self.name.addr().unwrap()).unwrap()
    }

    fn ask(&self, s: &mut UnixStream, cmd: &str) -> String {
        send_frame(s, cmd, soon()).unwrap();
        recv_reply(s, soon()).unwrap()
    }

    /// One fresh connection, one command.
    fn ask_once(&self, cmd: &str) -> String {
        let mut s = self.connect();
        self.ask(&mut s, cmd)
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Some(s) = self.server.take() {
            s.stop();
        }
        // Stopping the server drops the request sender, which ends the owner.
        if let Some(o) = self.owner.take() {
            o.join().unwrap();
        }
    }
}

fn soon() -> Instant {
    Instant::now() + Duration::from_secs(10)
}

fn quick() -> ServerConfig {
    ServerConfig {
        uxsock_timeout: Duration::from_millis(300),
        ..ServerConfig::default()
    }
}

/// True if the server closed the connection without sending anything.
fn closed_without_reply(s: &mut UnixStream) -> bool {
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = [0u8; 16];
    matches!(s.read(&mut buf), Ok(0))
}

#[test]
fn commands_round_trip_and_empty_reply_is_ok() {
    let h = Harness::new(ServerConfig::default());
    let mut s = h.connect();
    assert_eq!(h.ask(&mut s, "show paths"), "paths\n");
    // many commands on one connection
    assert_eq!(h.ask(&mut s, "add path /dev/sdb"), "ok\n");
    assert_eq!(h.ask(&mut s, "add path sdz"), "blacklisted\n");
    assert_eq!(h.ask(&mut s, "del map mpatha"), "fail\nmap or partition in use\n");
    assert_eq!(h.ask(&mut s, "sho topo"), "ShowMapsTopology\n");
    assert!(
        h.seen
            .lock()
            .unwrap()
            .contains(&Command::AddPath { path: "sdb".into() })
    );
}

#[test]
fn parse_errors_are_answered_without_the_owner() {
    let h = Harness::new(ServerConfig::default());
    assert_eq!(h.ask_once("sh"), format!("fail\nsh: not found\n{}", help_text()));
    assert_eq!(
        h.ask_once("show map mpatha \n"),
        format!("fail\nshow map mpatha \n: Missing argument\n{}", help_text())
    );
    assert_eq!(h.ask_once("queueing disable"), "fail\n");
    assert!(h.seen.lock().unwrap().is_empty());
}

#[test]
fn request_without_nul_is_accepted() {
    // infi.multipathtools counts no NUL in the length
    let h = Harness::new(ServerConfig::default());
    let mut s = h.connect();
    let cmd = b"show paths\n";
    s.write_all(&cmd.len().to_ne_bytes()).unwrap();
    s.write_all(cmd).unwrap();
    assert_eq!(recv_reply(&mut s, soon()).unwrap(), "paths\n");
}

#[test]
fn unprivileged_clients_may_only_show() {
    let h = Harness::new(ServerConfig {
        privileged_uid: u32::MAX - 1,
        ..ServerConfig::default()
    });
    assert_eq!(h.ask_once("add path sdb"), "fail\npermission deny: need to be root\n");
    assert_eq!(h.ask_once("show paths"), "paths\n");
    assert_eq!(h.seen.lock().unwrap().as_slice(), [Command::ShowPaths]);
}

#[test]
fn slow_owner_gets_timeout_reply() {
    let h = Harness::new(quick());
    let mut s = h.connect();
    assert_eq!(h.ask(&mut s, "show daemon"), "fail\ntimeout\n");
    // the connection stays usable
    assert_eq!(h.ask(&mut s, "show paths"), "paths\n");
    // an owner that drops the request unanswered gives a bare fail
    assert_eq!(h.ask(&mut s, "shutdown"), "fail\n");
}

#[test]
fn oversized_length_drops_connection_and_server_stays_up() {
    let h = Harness::new(ServerConfig::default());
    let mut s = h.connect();
    s.write_all(&513usize.to_ne_bytes()).unwrap();
    assert!(closed_without_reply(&mut s));
    assert_eq!(h.ask_once("show paths"), "paths\n");
}

#[test]
fn length_zero_drops_connection() {
    let h = Harness::new(ServerConfig::default());
    let mut s = h.connect();
    s.write_all(&0usize.to_ne_bytes()).unwrap();
    assert!(closed_without_reply(&mut s));
    assert_eq!(h.ask_once("show paths"), "paths\n");
}

#[test]
fn largest_allowed_request_is_served() {
    let h = Harness::new(ServerConfig::default());
    let cmd = format!("show path {}", "a".repeat(511 - 10));
    assert_eq!(cmd.len() + 1, 512);
    assert_eq!(
        h.ask_once(&cmd),
        format!("{:?}\n", Command::ShowPath { path: "a".repeat(501) })
    );
}

#[test]
fn truncated_message_times_out_while_others_are_served() {
    let h = Harness::new(quick());
    let mut s = h.connect();
    s.write_all(&100usize.to_ne_bytes()).unwrap();
    s.write_all(b"show pa").unwrap();
    // meanwhile another client is served at once
    assert_eq!(h.ask_once("show paths"), "paths\n");
    assert_eq!(recv_reply(&mut s, soon()).unwrap(), "fail\ntimeout\n");
    assert!(closed_without_reply(&mut s));
}

#[test]
fn binary_garbage() {
    let h = Harness::new(ServerConfig::default());
    // garbage as a length header: far too long, dropped
    let mut s = h.connect();
    s.write_all(&[0xde, 0xad, 0xbe, 0xef, 0xff, 0x17, 0x00, 0x80]).unwrap();
    assert!(closed_without_reply(&mut s));
    // valid length, garbage body: a parse error reply, nothing reaches the owner
    let mut s = h.connect();
    let body: Vec<u8> = (0u8..=255).cycle().skip(1).take(200).collect();
    s.write_all(&body.len().to_ne_bytes()).unwrap();
    s.write_all(&body).unwrap();
    let reply = recv_reply(&mut s, soon()).unwrap();
    assert!(reply.starts_with("fail\n"), "{reply:?}");
    assert!(h.seen.lock().unwrap().is_empty());
    assert_eq!(h.ask_once("show paths"), "paths\n");
}

#[test]
fn peer_vanishing_mid_request_is_harmless() {
    let h = Harness::new(ServerConfig::default());
    {
        let mut s = h.connect();
        s.write_all(&50usize.to_ne_bytes()).unwrap();
        s.write_all(b"show").unwrap();
    }
    {
        let mut s = h.connect();
        send_frame(&mut s, "show maps json", soon()).unwrap();
    }
    assert_eq!(h.ask_once("show paths"), "paths\n");
}

#[test]
fn thousand_idle_connections() {
    let h = Harness::new(ServerConfig::default());
    let idle: Vec<UnixStream> = (0..1000).map(|_| h.connect()).collect();
    assert_eq!(h.ask_once("show paths"), "paths\n");
    let mut last = idle.into_iter().last().unwrap();
    assert_eq!(h.ask(&mut last, "show paths"), "paths\n");
}

#[test]
fn client_that_never_reads_a_large_reply() {
    let h = Harness::new(quick());
    let mut hog = h.connect();
    send_frame(&mut hog, "show maps json", soon()).unwrap();
    // the hog never reads; others are still served promptly
    for _ in 0..3 {
        assert_eq!(h.ask_once("show paths"), "paths\n");
    }
    // and a client that does read gets the whole large reply
    let mut reader = h.connect();
    send_frame(&mut reader, "show maps json", soon()).unwrap();
    assert_eq!(recv_reply(&mut reader, soon()).unwrap().len(), BIG);
    // the hog is eventually dropped instead of holding its buffer forever: wait for
    // the hang-up before reading anything
    {
        use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
        use std::os::fd::AsFd;
        let mut fds = [PollFd::new(hog.as_fd(), PollFlags::empty())];
        assert_eq!(poll(&mut fds, PollTimeout::from(10_000u16)).unwrap(), 1);
        assert!(fds[0].revents().unwrap().contains(PollFlags::POLLHUP));
    }
    hog.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut sink = vec![0u8; 1 << 20];
    let mut total = 0;
    loop {
        match hog.read(&mut sink) {
            Ok(0) => break,
            Ok(n) => total += n,
            Err(e) => panic!("{e}"),
        }
    }
    assert!(total < BIG + LEN_SIZE + 1, "hog got the whole reply after its deadline");
}

#[test]
fn idle_connections_are_closed_after_the_idle_limit() {
    let h = Harness::new(ServerConfig {
        idle_timeout: Duration::from_millis(100),
        ..ServerConfig::default()
    });
    let mut s = h.connect();
    assert_eq!(h.ask(&mut s, "show paths"), "paths\n");
    assert!(closed_without_reply(&mut s));
}

#[test]
fn connection_limit_queues_extra_clients() {
    let h = Harness::new(ServerConfig {
        max_clients: 2,
        ..ServerConfig::default()
    });
    let a = h.connect();
    let mut b = h.connect();
    assert_eq!(h.ask(&mut b, "show paths"), "paths\n");
    let mut c = h.connect();
    send_frame(&mut c, "show paths", soon()).unwrap();
    let r = recv_reply(&mut c, Instant::now() + Duration::from_millis(200));
    assert!(
        matches!(r, Err(FrameError::Timeout)),
        "third client served beyond the limit"
    );
    drop(a);
    assert_eq!(recv_reply(&mut c, soon()).unwrap(), "paths\n");
}

#[test]
fn pathname_socket_is_world_accessible() {
    let h = Harness::new(ServerConfig::default());
    let SocketName::Path(p) = &h.name else { unreachable!() };
    assert_eq!(std::fs::metadata(p).unwrap().permissions().mode() & 0o777, 0o666);
}

#[test]
fn abstract_socket_works() {
    let name = SocketName::Abstract(format!("/test/multipathd-rs/{}", std::process::id()));
    let listener = bind(&name).unwrap();
    let (tx, rx) = unbounded();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let o = std::thread::spawn(move || owner(rx, seen));
    let server = spawn(vec![listener], ServerConfig::default(), tx).unwrap();
    let mut s = UnixStream::connect_addr(&name.addr().unwrap()).unwrap();
    send_frame(&mut s, "show paths", soon()).unwrap();
    assert_eq!(recv_reply(&mut s, soon()).unwrap(), "paths\n");
    server.stop();
    o.join().unwrap();
}

// ---- the client against the server ----

fn client(h: &Harness, mode: ClientMode, stdin: &str) -> (i32, String, String) {
    let mut input = stdin.as_bytes();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = run_with(
        &mode,
        std::slice::from_ref(&h.name),
        Duration::from_secs(4),
        &mut input,
        &mut out,
        &mut err,
    );
    (code, String::from_utf8(out).unwrap(), String::from_utf8(err).unwrap())
}

fn words(w: &[&str]) -> ClientMode {
    ClientMode::Words(w.iter().map(|s| s.to_string()).collect())
}

#[test]
fn client_prints_reply_and_exit_codes() {
    let h = Harness::new(ServerConfig::default());
    assert_eq!(
        client(&h, words(&["show", "paths"]), ""),
        (0, "paths\n".into(), String::new())
    );
    assert_eq!(
        client(&h, words(&["add", "path", "sdz"]), ""),
        (0, "blacklisted\n".into(), String::new())
    );
    assert_eq!(
        client(&h, words(&["del", "map", "x"]), ""),
        (1, "map or partition in use\n".into(), String::new())
    );
    assert_eq!(
        client(&h, words(&["queueing", "disable"]), ""),
        (1, "fail\n".into(), String::new())
    );
    assert_eq!(
        client(&h, ClientMode::Verbatim("resize map dm-4".into()), ""),
        (
            0,
            format!("{:?}\n", Command::Resize { map: "dm-4".into() }),
            String::new()
        )
    );
    assert_eq!(h.seen.lock().unwrap()[0], Command::ShowPaths);
}

#[test]
fn client_sends_joined_words_verbatim() {
    let h = Harness::new(ServerConfig::default());
    // the trailing " \n" shows up in the error reply, as with upstream
    let (code, out, _) = client(&h, words(&["show", "map", "m"]), "");
    assert_eq!(code, 1);
    assert!(out.starts_with("show map m \n: Missing argument\n"), "{out:?}");
    let (code, out, _) = client(&h, words(&["show", "maps", "raw", "format", "\"", "%d,%w", "\""]), "");
    assert_eq!(code, 0);
    assert_eq!(
        out,
        format!(
            "{:?}\n",
            Command::ShowMapsFormat {
                fmt: " %d,%w ".into(),
                raw: true
            }
        )
    );
}

#[test]
fn client_connect_failure_and_too_long_command() {
    let dir = tempfile::tempdir().unwrap();
    let missing = SocketName::Path(dir.path().join("nothing"));
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = run_with(
        &words(&["show", "paths"]),
        &[missing],
        Duration::from_secs(1),
        &mut &b""[..],
        &mut out,
        &mut err,
    );
    assert_eq!(
        (code, String::from_utf8(err).unwrap()),
        (1, "ERROR: failed to connect to multipathd\n".into())
    );
    let h = Harness::new(ServerConfig::default());
    let long = "x".repeat(200);
    assert_eq!(
        client(&h, words(&["show", "path", &long]), ""),
        (1, String::new(), "multipathd command too large\n".into())
    );
}

#[test]
fn client_reports_receive_timeout() {
    let h = Harness::new(ServerConfig {
        uxsock_timeout: Duration::from_secs(30),
        ..ServerConfig::default()
    });
    let mut input = &b""[..];
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = run_with(
        &words(&["show", "daemon"]),
        std::slice::from_ref(&h.name),
        Duration::from_millis(100),
        &mut input,
        &mut out,
        &mut err,
    );
    assert_eq!(
        (code, String::from_utf8(out).unwrap()),
        (1, "timeout receiving packet\n".into())
    );
}

#[test]
fn interactive_session_like_xapi_expects() {
    let h = Harness::new(ServerConfig::default());
    let (code, out, _) = client(&h, ClientMode::Interactive, "add path sdb\n");
    assert_eq!((code, out.as_str()), (0, "multipathd> ok\nmultipathd> "));
    let (code, out, _) = client(&h, ClientMode::Interactive, "show paths\n\nquit\nshow paths\n");
    assert_eq!((code, out.as_str()), (0, "multipathd> paths\nmultipathd> multipathd> "));
}

#[test]
fn shows_are_answered_from_the_published_snapshot_without_the_owner() {
    use multipathd::cli::format::DaemonState;
    use multipathd::cli::snapshot::{Snapshot, channel};
    let (publisher, feed) = channel().unwrap();
    let snap = Snapshot {
        generation: 1,
        config_generation: 0,
        paths: Vec::new(),
        maps: Vec::new(),
        marginal: Vec::new(),
        config: Arc::new(multipathd::config::Config::default()),
        devices: Arc::default(),
        state: DaemonState::Idle,
        reload_pending: false,
        pid: 2509,
        status_read: Some(Instant::now()),
    };
    publisher.publish(Arc::new(snap.clone()));
    let h = Harness::new(ServerConfig {
        views: Some(feed),
        ..quick()
    });
    // the fake owner would never answer this one
    assert_eq!(h.ask_once("show daemon"), "pid 2509 idle\n");
    assert_eq!(
        h.ask_once("show status"),
        "path checker states:\n\npaths: 0\nbusy: False\n"
    );
    // a newer snapshot wins
    publisher.publish(Arc::new(Snapshot {
        generation: 2,
        state: DaemonState::Running,
        reload_pending: false,
        ..snap
    }));
    let deadline = Instant::now() + Duration::from_secs(5);
    while h.ask_once("show daemon") != "pid 2509 running\n" {
        assert!(Instant::now() < deadline, "the new snapshot was never taken");
        std::thread::sleep(Duration::from_millis(10));
    }
    // modifying commands still go to the owner
    assert_eq!(h.ask_once("add path sdb"), "ok\n");
    assert_eq!(
        h.seen.lock().unwrap().as_slice(),
        [Command::AddPath { path: "sdb".into() }]
    );
}
