//! The control socket server: one thread multiplexing every client with `poll`.
//!
//! The thread reads framed commands, parses them, checks permissions, and hands each
//! [`Command`] to the state owner as a [`Request`]; the owner answers on the request's
//! reply channel. A client is served one command at a time, many per connection.
//! Writes are non-blocking with a per-client buffer, so a client that never reads its
//! reply only hurts itself. Every command must be answered within `uxsock_timeout`
//! of its length arriving, otherwise the client gets `fail\ntimeout\n`.

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{SocketAddr, UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, SendError, Sender, TryRecvError};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::eventfd::{EfdFlags, EventFd};
use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};

use super::parse::{Command, HandlerError, parse};
use super::protocol::{LEN_SIZE, MAX_CMD_LEN, MAX_REPLY_LEN, decode_len, encode, payload_text};

/// Name of the abstract socket (`@` in `ss`/`/proc/net/unix` output).
pub const ABSTRACT_SOCKET: &str = "/org/kernel/linux/storage/multipathd";
/// Pathname socket, reachable across network namespaces (containers).
pub const PATH_SOCKET: &str = "/run/multipathd.socket";
/// Environment variable overriding the socket name (`@name` = abstract).
pub const SOCKET_ENV: &str = "MULTIPATH_SOCKET_NAME";

/// How long new connections wait after `accept` failed (e.g. out of descriptors).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// A command for the state owner, with the channel its reply goes to. An empty reply
/// is sent to the client as `ok\n`; error replies start with `fail\n` (see
/// [`HandlerError::reply`]). The owner must not block on a dropped receiver.
#[derive(Debug)]
pub struct Request {
    pub cmd: Command,
    pub reply: Reply,
}

/// Where the state owner answers a [`Request`]: the text goes down a channel and an
/// eventfd wakes the listener's `poll`, so the reply leaves as soon as it exists.
#[derive(Debug)]
pub struct Reply {
    tx: Sender<String>,
    wake: Arc<EventFd>,
}

impl Reply {
    /// Errs when the listener no longer waits for it (the client timed out or left).
    pub fn send(&self, text: String) -> Result<(), SendError<String>> {
        self.tx.send(text)?;
        // The counter cannot overflow in practice; either way the poll is woken.
        let _ = self.wake.write(1);
        Ok(())
    }
}

/// Where to listen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SocketName {
    /// Linux abstract namespace, given without the leading NUL / `@`.
    Abstract(String),
    Path(PathBuf),
}

impl SocketName {
    /// Parse `$MULTIPATH_SOCKET_NAME`-style names: `@name` is abstract.
    pub fn from_env_value(v: &str) -> SocketName {
        match v.strip_prefix('@') {
            Some(name) => SocketName::Abstract(name.to_string()),
            None => SocketName::Path(PathBuf::from(v)),
        }
    }

    /// The socket address to bind or connect to.
    pub fn addr(&self) -> io::Result<SocketAddr> {
        match self {
            SocketName::Abstract(name) => SocketAddr::from_abstract_name(name.as_bytes()),
            SocketName::Path(p) => SocketAddr::from_pathname(p),
        }
    }
}

impl std::fmt::Display for SocketName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SocketName::Abstract(n) => write!(f, "@{n}"),
            SocketName::Path(p) => write!(f, "{}", p.display()),
        }
    }
}

/// Names the daemon listens on without socket activation: `$MULTIPATH_SOCKET_NAME`,
/// else the abstract and the pathname socket.
pub fn default_socket_names() -> Vec<SocketName> {
    match std::env::var(SOCKET_ENV) {
        Ok(v) if !v.is_empty() => vec![SocketName::from_env_value(&v)],
        _ => vec![
            SocketName::Abstract(ABSTRACT_SOCKET.to_string()),
            SocketName::Path(PathBuf::from(PATH_SOCKET)),
        ],
    }
}

/// Bind one listening socket. A stale pathname socket is replaced, and the pathname
/// socket is made world-accessible (permissions are checked per command instead).
pub fn bind(name: &SocketName) -> io::Result<UnixListener> {
    let with_ctx = |e: io::Error| io::Error::new(e.kind(), format!("socket {name}: {e}"));
    if let SocketName::Path(p) = name {
        use std::os::unix::fs::FileTypeExt;
        if let Ok(meta) = std::fs::symlink_metadata(p)
            && meta.file_type().is_socket()
        {
            std::fs::remove_file(p).map_err(with_ctx)?;
        }
    }
    let listener = UnixListener::bind_addr(&name.addr().map_err(with_ctx)?).map_err(with_ctx)?;
    if let SocketName::Path(p) = name {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o666)).map_err(with_ctx)?;
    }
    Ok(listener)
}

/// Listening sockets passed by systemd (`LISTEN_FDS`, at most two are used), if any.
pub fn activated_listeners() -> io::Result<Vec<UnixListener>> {
    let fds: Vec<RawFd> = sd_notify::listen_fds()?.take(2).collect();
    Ok(fds
        .into_iter()
        // SAFETY: systemd hands these descriptors to this process exclusively; nothing
        // else in the daemon owns or closes them.
        .map(|fd| UnixListener::from(unsafe { OwnedFd::from_raw_fd(fd) }))
        .collect())
}

/// Socket-activated listeners if any, else bind [`default_socket_names`]. A name that
/// fails to bind is logged and skipped; it is an error only if none can be bound.
pub fn open_listeners() -> io::Result<Vec<UnixListener>> {
    let activated = activated_listeners()?;
    if !activated.is_empty() {
        return Ok(activated);
    }
    let mut out = Vec::new();
    let mut last_err = None;
    for name in default_socket_names() {
        match bind(&name) {
            Ok(l) => out.push(l),
            Err(e) => {
                log::error!("{e}");
                last_err = Some(e);
            }
        }
    }
    match (out.is_empty(), last_err) {
        (true, Some(e)) => Err(e),
        _ => Ok(out),
    }
}

/// Produces the `show daemon` reply (see [`super::format::daemon`]) from state the
/// daemon shares with the listener, so that liveness checks are answered even while the
/// state owner is busy (upstream runs this handler without taking its lock).
pub type DaemonStatusFn = Arc<dyn Fn() -> String + Send + Sync>;

/// Server limits.
#[derive(Clone)]
pub struct ServerConfig {
    /// Deadline for answering one command (multipath.conf `uxsock_timeout`).
    pub uxsock_timeout: Duration,
    /// Connections served at once; more wait in the listen backlog.
    pub max_clients: usize,
    /// A connection idle this long between commands is closed.
    pub idle_timeout: Duration,
    /// The uid allowed to run commands other than list/show (root; tests change it).
    pub privileged_uid: u32,
    /// If set, `show daemon` is answered by the listener thread itself.
    pub daemon_status: Option<DaemonStatusFn>,
}

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("uxsock_timeout", &self.uxsock_timeout)
            .field("max_clients", &self.max_clients)
            .field("idle_timeout", &self.idle_timeout)
            .field("privileged_uid", &self.privileged_uid)
            .field("daemon_status", &self.daemon_status.is_some())
            .finish()
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            uxsock_timeout: Duration::from_millis(4000),
            max_clients: 16380,
            idle_timeout: Duration::from_secs(3600),
            privileged_uid: 0,
            daemon_status: None,
        }
    }
}

enum State {
    /// Waiting for (the rest of) a length header; the deadline starts at its first byte.
    Len {
        hdr: [u8; LEN_SIZE],
        got: usize,
        deadline: Option<Instant>,
    },
    Body {
        buf: Vec<u8>,
        got: usize,
        deadline: Instant,
    },
    /// The state owner has the command.
    Waiting { rx: Receiver<String>, deadline: Instant },
    Sending {
        out: Vec<u8>,
        pos: usize,
        deadline: Instant,
        close_after: bool,
    },
}

struct Client {
    stream: UnixStream,
    uid: u32,
    state: State,
    last_active: Instant,
    dead: bool,
}

impl Client {
    fn fresh_len() -> State {
        State::Len {
            hdr: [0; LEN_SIZE],
            got: 0,
            deadline: None,
        }
    }

    fn reply(&mut self, text: &str, close_after: bool, now: Instant, cfg: &ServerConfig) {
        let text = if text.is_empty() { "ok\n" } else { text };
        let out = if text.len() + 1 >= MAX_REPLY_LEN {
            log::warn!("cli: reply of {} bytes exceeds the maximum, sending fail", text.len());
            encode(HandlerError::Failed.reply())
        } else {
            encode(text)
        };
        self.state = State::Sending {
            out,
            pos: 0,
            deadline: now + cfg.uxsock_timeout,
            close_after,
        };
    }

    fn events(&self) -> PollFlags {
        match self.state {
            State::Len { .. } | State::Body { .. } => PollFlags::POLLIN,
            State::Waiting { .. } => PollFlags::empty(),
            State::Sending { .. } => PollFlags::POLLOUT,
        }
    }

    /// The next instant this client needs attention without any IO.
    fn wake_at(&self, cfg: &ServerConfig) -> Instant {
        match &self.state {
            State::Len { deadline: None, .. } => self.last_active + cfg.idle_timeout,
            State::Len { deadline: Some(d), .. } | State::Body { deadline: d, .. } => *d,
            State::Waiting { deadline, .. } => *deadline,
            State::Sending { deadline, .. } => *deadline,
        }
    }
}

/// Read what is available into `buf[*got..]`; false if the peer is gone.
fn read_some(stream: &mut UnixStream, buf: &mut [u8], got: &mut usize) -> bool {
    loop {
        match stream.read(&mut buf[*got..]) {
            Ok(0) => return false,
            Ok(n) => {
                *got += n;
                return true;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
            Err(_) => return false,
        }
    }
}

struct Server {
    listeners: Vec<UnixListener>,
    waker: UnixStream,
    /// Written by [`Reply::send`]; its readiness wakes the poll to pass replies on.
    replies_ready: Arc<EventFd>,
    /// After a failed accept: no new connections before this instant.
    accept_paused_until: Option<Instant>,
    cfg: ServerConfig,
    requests: Sender<Request>,
    clients: Vec<Client>,
}

impl Server {
    fn accept(&mut self, idx: usize, now: Instant) {
        while self.clients.len() < self.cfg.max_clients {
            match self.listeners[idx].accept() {
                Ok((stream, _)) => {
                    self.accept_paused_until = None;
                    if let Err(e) = stream.set_nonblocking(true) {
                        log::warn!("cli: cannot make client socket non-blocking: {e}");
                        continue;
                    }
                    // Unknown credentials get the unprivileged treatment.
                    let uid = getsockopt(&stream, PeerCredentials).map_or(u32::MAX, |c| c.uid());
                    log::debug!("cli: new client fd {} uid {uid}", stream.as_raw_fd());
                    self.clients.push(Client {
                        stream,
                        uid,
                        state: Client::fresh_len(),
                        last_active: now,
                        dead: false,
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    // Out of descriptors (EMFILE/ENFILE) or memory: the connection stays
                    // queued and the listener readable, so stop polling it for a moment
                    // instead of spinning on it.
                    if self.accept_paused_until.is_none() {
                        log::warn!("cli: accept failed: {e}; pausing new connections");
                    }
                    self.accept_paused_until = Some(now + ACCEPT_BACKOFF);
                    return;
                }
            }
        }
    }

    /// Turn a complete request text into a reply or a request to the state owner.
    fn dispatch(&self, c: &mut Client, text: &str, now: Instant) {
        log::debug!("cli: request {text:?}");
        let cmd = match parse(text) {
            Ok(cmd) => cmd,
            Err(e) => return c.reply(&e.reply(text), false, now, &self.cfg),
        };
        if c.uid != self.cfg.privileged_uid && !cmd.is_show() {
            log::info!("cli: unauthorized command {text:?} from uid {}", c.uid);
            return c.reply(HandlerError::PermissionDenied.reply(), false, now, &self.cfg);
        }
        if let (Command::ShowDaemon, Some(status)) = (&cmd, &self.cfg.daemon_status) {
            return c.reply(&status(), false, now, &self.cfg);
        }
        let (tx, rx) = crossbeam_channel::bounded(1);
        let reply = Reply {
            tx,
            wake: Arc::clone(&self.replies_ready),
        };
        if self.requests.send(Request { cmd, reply }).is_err() {
            log::error!("cli: state owner is gone");
            return c.reply(HandlerError::Failed.reply(), false, now, &self.cfg);
        }
        let deadline = match c.state {
            State::Body { deadline, .. } => deadline,
            _ => now + self.cfg.uxsock_timeout,
        };
        c.state = State::Waiting { rx, deadline };
    }

    /// Do whatever IO the client is ready for.
    fn service(&self, c: &mut Client, revents: PollFlags, now: Instant) {
        if revents.contains(PollFlags::POLLERR) {
            c.dead = true;
            return;
        }
        match &mut c.state {
            State::Len { hdr, got, deadline } => {
                if !revents.intersects(PollFlags::POLLIN | PollFlags::POLLHUP) {
                    return;
                }
                if !read_some(&mut c.stream, hdr, got) {
                    c.dead = true;
                    return;
                }
                c.last_active = now;
                if *got > 0 && deadline.is_none() {
                    *deadline = Some(now + self.cfg.uxsock_timeout);
                }
                if *got < LEN_SIZE {
                    return;
                }
                let len = decode_len(*hdr);
                if len == 0 || len > MAX_CMD_LEN {
                    log::warn!("cli: fd {}: bad command length {len}, dropping", c.stream.as_raw_fd());
                    c.dead = true;
                    return;
                }
                let deadline = deadline.unwrap_or(now + self.cfg.uxsock_timeout);
                c.state = State::Body {
                    buf: vec![0; len],
                    got: 0,
                    deadline,
                };
                // The body usually arrives with the header; try it right away.
                self.service(c, PollFlags::POLLIN, now);
            }
            State::Body { buf, got, .. } => {
                if !revents.intersects(PollFlags::POLLIN | PollFlags::POLLHUP) {
                    return;
                }
                if !read_some(&mut c.stream, buf, got) {
                    c.dead = true;
                    return;
                }
                c.last_active = now;
                if *got == buf.len() {
                    let text = payload_text(buf);
                    self.dispatch(c, &text, now);
                }
            }
            State::Waiting { .. } => {
                if revents.contains(PollFlags::POLLHUP) {
                    c.dead = true;
                }
            }
            State::Sending {
                out, pos, close_after, ..
            } => {
                if revents.contains(PollFlags::POLLHUP) {
                    c.dead = true;
                    return;
                }
                while *pos < out.len() {
                    match c.stream.write(&out[*pos..]) {
                        Ok(0) => {
                            c.dead = true;
                            return;
                        }
                        Ok(n) => *pos += n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                        Err(_) => {
                            c.dead = true;
                            return;
                        }
                    }
                }
                c.last_active = now;
                if *close_after {
                    c.dead = true;
                } else {
                    c.state = Client::fresh_len();
                }
            }
        }
    }

    /// Deadlines and replies that need no socket readiness.
    fn tick(&self, c: &mut Client, now: Instant) {
        let timeout = HandlerError::Timeout.reply();
        match &mut c.state {
            State::Len { deadline: None, .. } => {
                if now >= c.last_active + self.cfg.idle_timeout {
                    log::debug!("cli: closing idle client fd {}", c.stream.as_raw_fd());
                    c.dead = true;
                }
            }
            State::Len { deadline: Some(d), .. } | State::Body { deadline: d, .. } => {
                if now >= *d {
                    // The stream is out of step now; answer and hang up.
                    c.reply(timeout, true, now, &self.cfg);
                }
            }
            State::Waiting { rx, deadline } => match rx.try_recv() {
                Ok(text) => {
                    c.reply(&text, false, now, &self.cfg);
                    self.service(c, PollFlags::POLLOUT, now);
                }
                Err(TryRecvError::Empty) if now >= *deadline => c.reply(timeout, false, now, &self.cfg),
                Err(TryRecvError::Empty) => {}
                Err(TryRecvError::Disconnected) => c.reply(HandlerError::Failed.reply(), false, now, &self.cfg),
            },
            State::Sending { deadline, .. } => {
                if now >= *deadline {
                    log::warn!(
                        "cli: client fd {} does not read its reply, dropping",
                        c.stream.as_raw_fd()
                    );
                    c.dead = true;
                }
            }
        }
    }

    fn run(mut self) {
        loop {
            let now = Instant::now();
            let paused = self.accept_paused_until.filter(|t| now < *t);
            let accepting = self.clients.len() < self.cfg.max_clients && paused.is_none();
            let wake = self.clients.iter().map(|c| c.wake_at(&self.cfg)).chain(paused).min();
            let timeout = match wake {
                None => PollTimeout::NONE,
                Some(t) => {
                    let ms = t.saturating_duration_since(now).as_millis();
                    PollTimeout::from(u16::try_from(ms).unwrap_or(u16::MAX))
                }
            };
            let mut fds: Vec<PollFd> = Vec::with_capacity(2 + self.listeners.len() + self.clients.len());
            fds.push(PollFd::new(self.waker.as_fd(), PollFlags::POLLIN));
            fds.push(PollFd::new(self.replies_ready.as_fd(), PollFlags::POLLIN));
            for l in &self.listeners {
                let ev = if accepting {
                    PollFlags::POLLIN
                } else {
                    PollFlags::empty()
                };
                fds.push(PollFd::new(l.as_fd(), ev));
            }
            for c in &self.clients {
                fds.push(PollFd::new(c.stream.as_fd(), c.events()));
            }
            match poll(&mut fds, timeout) {
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => {
                    log::error!("cli: poll failed: {e}; listener stops");
                    return;
                }
            }
            let revents: Vec<PollFlags> = fds.iter().map(|f| f.revents().unwrap_or(PollFlags::empty())).collect();
            drop(fds);
            if !revents[0].is_empty() {
                log::debug!("cli: listener stopping");
                // Replies already produced (the `ok` of `shutdown`) still go out.
                let now = Instant::now();
                let mut clients = std::mem::take(&mut self.clients);
                for c in clients.iter_mut().filter(|c| !c.dead) {
                    self.tick(c, now);
                }
                return;
            }
            if !revents[1].is_empty() {
                // Only resets the counter: every waiting client looks for its reply below.
                let _ = self.replies_ready.read();
            }
            let now = Instant::now();
            let nl = self.listeners.len();
            let mut clients = std::mem::take(&mut self.clients);
            for (c, ev) in clients.iter_mut().zip(&revents[2 + nl..]) {
                if !ev.is_empty() {
                    self.service(c, *ev, now);
                }
                if !c.dead {
                    self.tick(c, now);
                }
            }
            clients.retain(|c| !c.dead);
            self.clients = clients;
            for i in 0..nl {
                if revents[2 + i].contains(PollFlags::POLLIN) {
                    self.accept(i, now);
                }
            }
        }
    }
}

/// A running listener thread.
pub struct ServerHandle {
    waker: UnixStream,
    thread: JoinHandle<()>,
}

impl ServerHandle {
    /// Stop the listener thread and wait for it; open connections are closed.
    pub fn stop(self) {
        // A failed write means the thread already ended; join either way.
        let _ = (&self.waker).write_all(b"x");
        if self.thread.join().is_err() {
            log::error!("cli: listener thread panicked");
        }
    }
}

/// Start the listener thread on `listeners`, sending parsed commands to `requests`.
pub fn spawn(listeners: Vec<UnixListener>, cfg: ServerConfig, requests: Sender<Request>) -> io::Result<ServerHandle> {
    for l in &listeners {
        l.set_nonblocking(true)?;
    }
    let (waker, wake_rx) = UnixStream::pair()?;
    let server = Server {
        listeners,
        waker: wake_rx,
        replies_ready: Arc::new(EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)?),
        accept_paused_until: None,
        cfg,
        requests,
        clients: Vec::new(),
    };
    let thread = std::thread::Builder::new()
        .name("uxlsnr".into())
        .spawn(move || server.run())?;
    Ok(ServerHandle { waker, thread })
}
