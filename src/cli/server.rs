//! The control socket server: one thread multiplexing every client with `poll`.
//!
//! The thread reads framed commands, parses them, checks permissions, and hands each
//! [`Command`] to the state owner as a [`Request`]; the owner answers on the request's
//! reply channel. A client is served one command at a time, many per connection.
//! Writes are non-blocking with a per-client buffer, so a client that never reads its
//! reply only hurts itself. Every command must be answered within `uxsock_timeout`
//! of its length arriving, otherwise the client gets `fail\ntimeout\n`.
//!
//! With a [`Feed`] of the owner's snapshots, list/show commands are answered here
//! from the newest one, never queued at the owner. Per-uid limits ([`super::limits`])
//! keep unprivileged peers from crowding out root: connections, requests in flight,
//! reply memory, and a short idle timeout.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{SocketAddr, UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, SendError, Sender, TryRecvError, TrySendError};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::eventfd::{EfdFlags, EventFd};
use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};

use super::limits::{Limit, Limits, Peers};
use super::parse::{Command, HandlerError, parse};
use super::protocol::{LEN_SIZE, MAX_CMD_LEN, MAX_REPLY_LEN, decode_len, encode, payload_text};
use super::snapshot::{Feed, Snapshot, depends_on_config_only, prints_group_states};

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
/// [`HandlerError::reply`]). The owner must not block on a dropped receiver. The
/// request channel should be bounded: the server holds requests back while it is full.
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
    /// Alive while the client still waits for this reply.
    wanted: Weak<()>,
}

impl Reply {
    /// Errs when the listener no longer waits for it (the client timed out or left).
    pub fn send(&self, text: String) -> Result<(), SendError<String>> {
        self.tx.send(text)?;
        // The counter cannot overflow in practice; either way the poll is woken.
        let _ = self.wake.write(1);
        Ok(())
    }

    /// False once the client has left or timed out: a show for it is not worth making.
    pub fn wanted(&self) -> bool {
        self.wanted.strong_count() > 0
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

/// How long a command that prints group states waits for the owner's fresh status read
/// (IO moves group states without any event, and upstream reads them for every such
/// command) before it is answered from the status it has; while a read is overdue the
/// others are answered at once.
const STATUS_WAIT: Duration = Duration::from_millis(500);
/// New connections taken per listener and poll round, so a connect storm cannot keep
/// the thread from serving the clients it has.
const ACCEPT_BATCH: usize = 64;

/// Server limits.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Deadline for answering one command (multipath.conf `uxsock_timeout`); while a
    /// reply is being read, each write that makes progress starts it again.
    pub uxsock_timeout: Duration,
    /// Connections served at once; more wait in the listen backlog.
    pub max_clients: usize,
    /// Of `max_clients`, how many only the privileged uid may take.
    pub root_reserve: usize,
    /// Connections one unprivileged uid may hold; more are closed at once.
    pub per_uid_clients: usize,
    /// Requests one unprivileged uid may have at the state owner at once; the others
    /// wait in the server (their deadline runs).
    pub per_uid_in_flight: usize,
    /// Reply bytes buffered for all clients above which replies to unprivileged
    /// clients are refused (`fail`); identical replies share one buffer.
    pub reply_budget: usize,
    /// The privileged uid's connection idle this long between commands is closed.
    pub idle_timeout: Duration,
    /// The same for every other uid.
    pub unprivileged_idle_timeout: Duration,
    /// The uid allowed to run commands other than list/show (root; tests change it).
    pub privileged_uid: u32,
    /// If set, list/show commands are answered from the snapshots the state owner
    /// publishes here, without the owner.
    pub views: Option<Feed>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            uxsock_timeout: Duration::from_millis(4000),
            max_clients: 16380,
            root_reserve: 64,
            per_uid_clients: 64,
            per_uid_in_flight: 4,
            reply_budget: 64 * 1024 * 1024,
            idle_timeout: Duration::from_secs(3600),
            unprivileged_idle_timeout: Duration::from_secs(10),
            privileged_uid: 0,
            views: None,
        }
    }
}

impl ServerConfig {
    fn limits(&self) -> Limits {
        Limits {
            max_clients: self.max_clients,
            root_reserve: self.root_reserve,
            per_uid_clients: self.per_uid_clients,
            per_uid_in_flight: self.per_uid_in_flight,
            reply_budget: self.reply_budget,
        }
    }
}

/// What the listener holds, for tests and benchmarks.
#[derive(Debug, Default)]
pub struct ServerStats {
    /// Connections served now.
    pub clients: AtomicUsize,
    /// Bytes of encoded replies held for clients (a shared reply counts once).
    pub reply_bytes: AtomicUsize,
    /// Connections closed at once because their uid was over its share.
    pub refused_connections: AtomicUsize,
}

/// One encoded reply, shared by every client sent the same one; its bytes count in
/// [`ServerStats::reply_bytes`] while any client holds it.
struct Frame {
    bytes: Vec<u8>,
    stats: Arc<ServerStats>,
}

impl Frame {
    fn new(text: &str, stats: &Arc<ServerStats>) -> Arc<Frame> {
        let bytes = if text.len() + 1 >= MAX_REPLY_LEN {
            log::warn!("cli: reply of {} bytes exceeds the maximum, sending fail", text.len());
            encode(HandlerError::Failed.reply())
        } else {
            encode(text)
        };
        stats.reply_bytes.fetch_add(bytes.len(), Ordering::Relaxed);
        Arc::new(Frame {
            bytes,
            stats: Arc::clone(stats),
        })
    }
}

impl Drop for Frame {
    fn drop(&mut self) {
        self.stats.reply_bytes.fetch_sub(self.bytes.len(), Ordering::Relaxed);
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
    /// For the state owner, held back until the peer has a request slot free and the
    /// owner's queue has room.
    Queued { cmd: Command, deadline: Instant },
    /// The state owner has the command; `_wanted` tells it someone still waits.
    Waiting {
        rx: Receiver<String>,
        deadline: Instant,
        _wanted: Arc<()>,
    },
    /// A command printing group states waits (until `until`) for the owner's fresh
    /// status read of every map.
    AwaitStatus { cmd: Command, until: Instant },
    Sending {
        out: Arc<Frame>,
        pos: usize,
        deadline: Instant,
        close_after: bool,
    },
}

struct Client {
    stream: UnixStream,
    uid: u32,
    privileged: bool,
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

    fn send(&mut self, out: Arc<Frame>, close_after: bool, now: Instant, cfg: &ServerConfig) {
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
            State::Queued { .. } | State::Waiting { .. } | State::AwaitStatus { .. } => PollFlags::empty(),
            State::Sending { .. } => PollFlags::POLLOUT,
        }
    }

    fn idle_timeout(&self, cfg: &ServerConfig) -> Duration {
        if self.privileged {
            cfg.idle_timeout
        } else {
            cfg.unprivileged_idle_timeout.min(cfg.idle_timeout)
        }
    }

    /// The next instant this client needs attention without any IO.
    fn wake_at(&self, cfg: &ServerConfig) -> Instant {
        match &self.state {
            State::Len { deadline: None, .. } => self.last_active + self.idle_timeout(cfg),
            State::Len { deadline: Some(d), .. } | State::Body { deadline: d, .. } => *d,
            State::Queued { deadline, .. } | State::Waiting { deadline, .. } => *deadline,
            State::AwaitStatus { until, .. } => *until,
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

/// Which snapshot a cached reply was made from, and for which command.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct CacheKey {
    config_only: bool,
    generation: u64,
    cmd: String,
}

struct Server {
    listeners: Vec<UnixListener>,
    waker: UnixStream,
    /// Written by [`Reply::send`]; its readiness wakes the poll to pass replies on.
    replies_ready: Arc<EventFd>,
    /// After a failed accept: no new connections before this instant.
    accept_paused_until: Option<Instant>,
    cfg: ServerConfig,
    limits: Limits,
    requests: Sender<Request>,
    clients: Vec<Client>,
    peers: Peers,
    /// Requests at the owner per unprivileged uid, counted at each poll round.
    in_flight: HashMap<u32, usize>,
    /// The newest view the owner published.
    snapshot: Option<Arc<Snapshot>>,
    /// When a fresh status read was asked for and not yet published.
    status_asked: Option<Instant>,
    /// Replies made from a snapshot, shared while any client still reads them.
    cache: HashMap<CacheKey, Weak<Frame>>,
    stats: Arc<ServerStats>,
}

impl Server {
    fn accept(&mut self, idx: usize, now: Instant) {
        for _ in 0..ACCEPT_BATCH {
            if self.peers.total() >= self.cfg.max_clients {
                return;
            }
            match self.listeners[idx].accept() {
                Ok((stream, _)) => {
                    self.accept_paused_until = None;
                    // Unknown credentials get the unprivileged treatment.
                    let uid = getsockopt(&stream, PeerCredentials).map_or(u32::MAX, |c| c.uid());
                    let privileged = uid == self.cfg.privileged_uid;
                    if !self.peers.admit(uid, privileged, &self.limits) {
                        self.stats.refused_connections.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    if let Err(e) = stream.set_nonblocking(true) {
                        log::warn!("cli: cannot make client socket non-blocking: {e}");
                        self.peers.left(uid, privileged);
                        continue;
                    }
                    log::debug!("cli: new client fd {} uid {uid}", stream.as_raw_fd());
                    self.clients.push(Client {
                        stream,
                        uid,
                        privileged,
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

    /// A reply made here (errors, the owner's text): not shared.
    fn reply(&self, c: &mut Client, text: &str, close_after: bool, now: Instant) {
        let text = if text.is_empty() { "ok\n" } else { text };
        c.send(Frame::new(text, &self.stats), close_after, now, &self.cfg);
    }

    /// Answer a show command from the newest snapshot, sharing the bytes of identical
    /// replies; an unprivileged client is refused while buffered replies exceed the budget.
    fn answer_from_snapshot(&mut self, c: &mut Client, cmd: &Command, now: Instant) {
        let Some(snap) = self.snapshot.clone() else {
            return self.reply(c, HandlerError::Failed.reply(), false, now);
        };
        let config_only = depends_on_config_only(cmd);
        let key = CacheKey {
            config_only,
            generation: if config_only {
                snap.config_generation
            } else {
                snap.generation
            },
            cmd: format!("{cmd:?}"),
        };
        if let Some(f) = self.cache.get(&key).and_then(Weak::upgrade) {
            return c.send(f, false, now, &self.cfg);
        }
        if !c.privileged && self.stats.reply_bytes.load(Ordering::Relaxed) > self.limits.reply_budget {
            self.peers.hit(c.uid, Limit::ReplyMemory, &self.limits);
            return self.reply(c, HandlerError::Failed.reply(), false, now);
        }
        let text = match snap.answer(cmd) {
            Some(Ok(t)) if t.is_empty() => "ok\n".to_string(),
            Some(Ok(t)) => t,
            Some(Err(e)) => e.reply().to_string(),
            None => HandlerError::Failed.reply().to_string(),
        };
        let frame = Frame::new(&text, &self.stats);
        if self.cache.len() >= 256 {
            self.cache.retain(|_, f| f.strong_count() > 0);
        }
        self.cache.insert(key, Arc::downgrade(&frame));
        c.send(frame, false, now, &self.cfg);
    }

    /// Turn a complete request text into a reply or a request to the state owner.
    /// `hung_up`: the peer has closed its end (a show for it is not worth answering).
    fn dispatch(&mut self, c: &mut Client, text: &str, hung_up: bool, now: Instant) {
        log::debug!("cli: request {text:?}");
        let cmd = match parse(text) {
            Ok(cmd) => cmd,
            Err(e) => return self.reply(c, &e.reply(text), false, now),
        };
        if !c.privileged && !cmd.is_show() {
            log::info!("cli: unauthorized command {text:?} from uid {}", c.uid);
            return self.reply(c, HandlerError::PermissionDenied.reply(), false, now);
        }
        if hung_up && cmd.is_show() {
            c.dead = true;
            return;
        }
        let deadline = match c.state {
            State::Body { deadline, .. } => deadline,
            _ => now + self.cfg.uxsock_timeout,
        };
        if self.snapshot.is_some() && cmd.is_show() {
            let overdue = self.status_asked.is_some_and(|t| now >= t + STATUS_WAIT);
            if prints_group_states(&cmd) && !overdue {
                let asked = *self.status_asked.get_or_insert_with(|| {
                    if let Some(feed) = &self.cfg.views {
                        feed.want_status();
                    }
                    now
                });
                c.state = State::AwaitStatus {
                    cmd,
                    until: asked + STATUS_WAIT,
                };
                return;
            }
            return self.answer_from_snapshot(c, &cmd, now);
        }
        c.state = State::Queued { cmd, deadline };
        self.pass_to_owner(c, now);
    }

    /// Hand a queued command to the owner if its peer has a slot free and the owner's
    /// queue has room; otherwise it stays queued.
    fn pass_to_owner(&mut self, c: &mut Client, now: Instant) {
        let State::Queued { cmd, deadline } = &c.state else {
            return;
        };
        let deadline = *deadline;
        if !c.privileged {
            let mine = self.in_flight.get(&c.uid).copied().unwrap_or(0);
            if mine >= self.limits.per_uid_in_flight {
                self.peers.hit(c.uid, Limit::InFlight, &self.limits);
                return;
            }
        }
        let (tx, rx) = crossbeam_channel::bounded(1);
        let wanted = Arc::new(());
        let reply = Reply {
            tx,
            wake: Arc::clone(&self.replies_ready),
            wanted: Arc::downgrade(&wanted),
        };
        match self.requests.try_send(Request {
            cmd: cmd.clone(),
            reply,
        }) {
            Ok(()) => {
                if !c.privileged {
                    *self.in_flight.entry(c.uid).or_default() += 1;
                }
                c.state = State::Waiting {
                    rx,
                    deadline,
                    _wanted: wanted,
                };
            }
            Err(TrySendError::Full(_)) => {}
            Err(TrySendError::Disconnected(_)) => {
                log::error!("cli: state owner is gone");
                self.reply(c, HandlerError::Failed.reply(), false, now);
            }
        }
    }

    /// Do whatever IO the client is ready for.
    fn service(&mut self, c: &mut Client, revents: PollFlags, now: Instant) {
        if revents.contains(PollFlags::POLLERR) {
            c.dead = true;
            return;
        }
        let hung_up = revents.contains(PollFlags::POLLHUP);
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
                self.service(c, revents | PollFlags::POLLIN, now);
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
                    self.dispatch(c, &text, hung_up, now);
                }
            }
            State::Queued { .. } | State::Waiting { .. } | State::AwaitStatus { .. } => {
                if hung_up {
                    c.dead = true;
                }
            }
            State::Sending {
                out,
                pos,
                deadline,
                close_after,
            } => {
                if hung_up {
                    c.dead = true;
                    return;
                }
                let bytes = &out.bytes;
                while *pos < bytes.len() {
                    match c.stream.write(&bytes[*pos..]) {
                        Ok(0) => {
                            c.dead = true;
                            return;
                        }
                        Ok(n) => {
                            *pos += n;
                            // A slow reader still reading is not cut off mid-reply.
                            *deadline = now + self.cfg.uxsock_timeout;
                        }
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
    fn tick(&mut self, c: &mut Client, now: Instant) {
        let timeout = HandlerError::Timeout.reply();
        match &mut c.state {
            State::Len { deadline: None, .. } => {
                if now >= c.last_active + c.idle_timeout(&self.cfg) {
                    log::debug!("cli: closing idle client fd {}", c.stream.as_raw_fd());
                    c.dead = true;
                }
            }
            State::Len { deadline: Some(d), .. } | State::Body { deadline: d, .. } => {
                if now >= *d {
                    // The stream is out of step now; answer and hang up.
                    self.reply(c, timeout, true, now);
                }
            }
            State::Queued { deadline, .. } => {
                if now >= *deadline {
                    self.reply(c, timeout, false, now);
                } else {
                    self.pass_to_owner(c, now);
                }
            }
            State::Waiting { rx, deadline, .. } => match rx.try_recv() {
                Ok(text) => {
                    self.reply(c, &text, false, now);
                    self.service(c, PollFlags::POLLOUT, now);
                }
                Err(TryRecvError::Empty) if now >= *deadline => self.reply(c, timeout, false, now),
                Err(TryRecvError::Empty) => {}
                Err(TryRecvError::Disconnected) => self.reply(c, HandlerError::Failed.reply(), false, now),
            },
            State::AwaitStatus { cmd, until } => {
                // Released by the read it asked for (made at `until - STATUS_WAIT` or later).
                let read = self.snapshot.as_ref().and_then(|s| s.status_read);
                if now >= *until || read.is_some_and(|t| t + STATUS_WAIT >= *until) {
                    let cmd = cmd.clone();
                    self.answer_from_snapshot(c, &cmd, now);
                    self.service(c, PollFlags::POLLOUT, now);
                }
            }
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

    /// Take the newest snapshot the owner published.
    fn take_snapshot(&mut self) {
        let Some(snap) = self.cfg.views.as_ref().and_then(Feed::newest) else {
            return;
        };
        if let (Some(asked), Some(read)) = (self.status_asked, snap.status_read)
            && read >= asked
        {
            self.status_asked = None;
        }
        self.snapshot = Some(snap);
    }

    fn count_in_flight(&mut self) {
        self.in_flight.clear();
        for c in &self.clients {
            if !c.privileged && matches!(c.state, State::Waiting { .. }) {
                *self.in_flight.entry(c.uid).or_default() += 1;
            }
        }
    }

    fn run(mut self) {
        self.take_snapshot();
        loop {
            let now = Instant::now();
            let paused = self.accept_paused_until.filter(|t| now < *t);
            let accepting = self.peers.total() < self.cfg.max_clients && paused.is_none();
            let wake = self.clients.iter().map(|c| c.wake_at(&self.cfg)).chain(paused).min();
            let timeout = match wake {
                None => PollTimeout::NONE,
                Some(t) => {
                    // Round up: waking a little early would find nothing due and spin.
                    let left = t.saturating_duration_since(now);
                    let ms = left.as_millis() + u128::from(left.subsec_nanos() % 1_000_000 != 0);
                    PollTimeout::from(u16::try_from(ms).unwrap_or(u16::MAX))
                }
            };
            let feed_fd = self.cfg.views.as_ref().map(|f| Arc::clone(&f.wake));
            let base = 2 + usize::from(feed_fd.is_some());
            let mut fds: Vec<PollFd> = Vec::with_capacity(base + self.listeners.len() + self.clients.len());
            fds.push(PollFd::new(self.waker.as_fd(), PollFlags::POLLIN));
            fds.push(PollFd::new(self.replies_ready.as_fd(), PollFlags::POLLIN));
            if let Some(f) = &feed_fd {
                fds.push(PollFd::new(f.as_fd(), PollFlags::POLLIN));
            }
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
            if base == 3 && !revents[2].is_empty() {
                self.take_snapshot();
            }
            let now = Instant::now();
            let nl = self.listeners.len();
            self.count_in_flight();
            let mut clients = std::mem::take(&mut self.clients);
            for (c, ev) in clients.iter_mut().zip(&revents[base + nl..]) {
                if !ev.is_empty() {
                    self.service(c, *ev, now);
                }
                if !c.dead {
                    self.tick(c, now);
                }
            }
            for c in clients.iter().filter(|c| c.dead) {
                self.peers.left(c.uid, c.privileged);
            }
            clients.retain(|c| !c.dead);
            self.clients = clients;
            for i in 0..nl {
                if revents[base + i].contains(PollFlags::POLLIN) {
                    self.accept(i, now);
                }
            }
            self.stats.clients.store(self.clients.len(), Ordering::Relaxed);
        }
    }
}

/// A running listener thread.
pub struct ServerHandle {
    waker: UnixStream,
    thread: JoinHandle<()>,
    stats: Arc<ServerStats>,
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

    /// What the listener holds now.
    pub fn stats(&self) -> Arc<ServerStats> {
        Arc::clone(&self.stats)
    }
}

/// Start the listener thread on `listeners`, sending parsed commands to `requests`.
pub fn spawn(listeners: Vec<UnixListener>, cfg: ServerConfig, requests: Sender<Request>) -> io::Result<ServerHandle> {
    for l in &listeners {
        l.set_nonblocking(true)?;
    }
    let (waker, wake_rx) = UnixStream::pair()?;
    let stats = Arc::new(ServerStats::default());
    let server = Server {
        listeners,
        waker: wake_rx,
        replies_ready: Arc::new(EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)?),
        accept_paused_until: None,
        limits: cfg.limits(),
        cfg,
        requests,
        clients: Vec::new(),
        peers: Peers::default(),
        in_flight: HashMap::new(),
        snapshot: None,
        status_asked: None,
        cache: HashMap::new(),
        stats: Arc::clone(&stats),
    };
    let thread = std::thread::Builder::new()
        .name("uxlsnr".into())
        .spawn(move || server.run())?;
    Ok(ServerHandle { waker, thread, stats })
}
