//! `multipathd <command>` / `multipathd -k[command]`: send commands to a running daemon.
//!
//! Argument contract (the daemon's option parser decides the mode):
//! - `-k"cmd"` → [`ClientMode::Verbatim`]: the text is sent exactly as given.
//! - non-option arguments → [`ClientMode::Words`]: joined as upstream does, each word
//!   followed by a space, words containing a space wrapped in `"…"`, then `\n`.
//! - bare `-k` → [`ClientMode::Interactive`]: a `multipathd> ` prompt reading stdin.
//!
//! Exit status: 0 on a normal reply, 1 on a `fail\n` reply (only the text after
//! `fail\n` is printed), on connection failure or on a receive error.

use std::io::{self, BufRead, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::protocol::{FrameError, recv_reply, send_frame};
use super::server::{ABSTRACT_SOCKET, PATH_SOCKET, SOCKET_ENV, SocketName};

/// Size of upstream's command buffer; joined words must fit in it.
const CMD_SIZE: usize = 160;
/// Extra time the client waits beyond the server's own deadline.
const REPLY_SLACK: Duration = Duration::from_millis(100);
const PROMPT: &str = "multipathd> ";

/// What the client sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientMode {
    Verbatim(String),
    Words(Vec<String>),
    Interactive,
}

impl ClientMode {
    /// Pick the client mode from the command line: `k` is the `-k` option (`Some(None)`
    /// when bare, `Some(Some(text))` for `-ktext`), `words` the non-option arguments.
    /// `-k` wins over words, as upstream acts on it while parsing options. None means
    /// daemon mode.
    pub fn from_cli(k: Option<Option<String>>, words: Vec<String>) -> Option<ClientMode> {
        match k {
            Some(Some(text)) => Some(ClientMode::Verbatim(text)),
            Some(None) => Some(ClientMode::Interactive),
            None if !words.is_empty() => Some(ClientMode::Words(words)),
            None => None,
        }
    }
}

/// Join command-line words the way upstream does. Errors with upstream's message if
/// the result does not fit its 160-byte buffer.
pub fn join_words(words: &[String]) -> Result<String, &'static str> {
    let mut cmd = String::new();
    for w in words {
        if w.contains(' ') {
            cmd.push('"');
            cmd.push_str(w);
            cmd.push_str("\" ");
        } else {
            cmd.push_str(w);
            cmd.push(' ');
        }
        if cmd.len() >= CMD_SIZE {
            return Err("multipathd command too large");
        }
    }
    // The newline is dropped, as upstream's snprintf truncates it, when the buffer is full.
    if cmd.len() + 2 <= CMD_SIZE {
        cmd.push('\n');
    }
    Ok(cmd)
}

/// Sockets to try, in order: `$MULTIPATH_SOCKET_NAME` alone if set, else the pathname
/// socket, then the abstract one.
pub fn socket_candidates() -> Vec<SocketName> {
    match std::env::var(SOCKET_ENV) {
        Ok(v) if !v.is_empty() => vec![SocketName::from_env_value(&v)],
        _ => vec![
            SocketName::Path(PathBuf::from(PATH_SOCKET)),
            SocketName::Abstract(ABSTRACT_SOCKET.to_string()),
        ],
    }
}

/// Connect to the first socket that accepts.
pub fn connect(names: &[SocketName]) -> io::Result<UnixStream> {
    let mut last = io::Error::new(io::ErrorKind::NotFound, "no socket to connect to");
    for name in names {
        match name.addr().and_then(|a| UnixStream::connect_addr(&a)) {
            Ok(s) => return Ok(s),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Why a command got no reply; Display is the text upstream's client prints.
#[derive(Debug)]
enum ExchangeError {
    Send,
    Recv(FrameError),
}

impl std::fmt::Display for ExchangeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExchangeError::Send => f.write_str("cannot send packet"),
            ExchangeError::Recv(FrameError::Timeout) => f.write_str("timeout receiving packet"),
            ExchangeError::Recv(FrameError::Closed) => write!(f, "error {} receiving packet", -libc::ECONNRESET),
            ExchangeError::Recv(FrameError::BadLength(_)) => write!(f, "error {} receiving packet", -libc::ERANGE),
            ExchangeError::Recv(FrameError::Io(err)) => {
                write!(f, "error {} receiving packet", -err.raw_os_error().unwrap_or(libc::EIO))
            }
        }
    }
}

/// Send one command and wait for its reply.
fn exchange(stream: &mut UnixStream, cmd: &str, timeout: Duration) -> Result<String, ExchangeError> {
    send_frame(stream, cmd, Instant::now() + timeout).map_err(|_| ExchangeError::Send)?;
    recv_reply(stream, Instant::now() + timeout + REPLY_SLACK).map_err(ExchangeError::Recv)
}

/// Run the client with explicit sockets and streams (testable core of [`run`]).
pub fn run_with(
    mode: &ClientMode,
    sockets: &[SocketName],
    uxsock_timeout: Duration,
    input: &mut dyn BufRead,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> i32 {
    let cmd = match mode {
        ClientMode::Verbatim(c) => c.clone(),
        ClientMode::Words(words) => match join_words(words) {
            Ok(c) => c,
            Err(msg) => {
                let _ = writeln!(err, "{msg}");
                return 1;
            }
        },
        ClientMode::Interactive => String::new(),
    };
    let mut stream = match connect(sockets) {
        Ok(s) => s,
        Err(_) => {
            let _ = writeln!(err, "ERROR: failed to connect to multipathd");
            return 1;
        }
    };
    if *mode == ClientMode::Interactive {
        return interactive(&mut stream, uxsock_timeout, input, out);
    }
    match exchange(&mut stream, &cmd, uxsock_timeout) {
        Ok(reply) => match reply.strip_prefix("fail\n") {
            Some(rest) if !rest.is_empty() => {
                let _ = write!(out, "{rest}");
                1
            }
            Some(_) => {
                let _ = write!(out, "{reply}");
                1
            }
            None => {
                let _ = write!(out, "{reply}");
                0
            }
        },
        Err(msg) => {
            let _ = writeln!(out, "{msg}");
            1
        }
    }
}

/// The `multipathd> ` loop: one connection, one command per input line; `exit` and
/// `quit` end it locally, as does end of input.
fn interactive(stream: &mut UnixStream, timeout: Duration, input: &mut dyn BufRead, out: &mut dyn Write) -> i32 {
    let mut line = String::new();
    loop {
        let _ = write!(out, "{PROMPT}");
        let _ = out.flush();
        line.clear();
        match input.read_line(&mut line) {
            Ok(0) | Err(_) => return 0,
            Ok(_) => {}
        }
        let cmd = line.trim_end_matches(['\n', '\r']);
        match cmd.trim() {
            "" => continue,
            "exit" | "quit" => return 0,
            _ => {}
        }
        match exchange(stream, cmd, timeout) {
            Ok(reply) => {
                let _ = write!(out, "{reply}");
            }
            Err(msg) => {
                let _ = writeln!(out, "{msg}");
                return 1;
            }
        }
    }
}

/// Client mode entry point for the daemon binary: real stdio, default sockets.
pub fn run(mode: &ClientMode, uxsock_timeout: Duration) -> i32 {
    let stdin = io::stdin();
    let mut input = stdin.lock();
    let mut out = io::stdout();
    let mut err = io::stderr();
    let code = run_with(
        mode,
        &socket_candidates(),
        uxsock_timeout,
        &mut input,
        &mut out,
        &mut err,
    );
    let _ = out.flush();
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(words: &[&str]) -> Vec<String> {
        words.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn words_are_joined_like_upstream() {
        assert_eq!(join_words(&w(&["show", "paths"])).unwrap(), "show paths \n");
        assert_eq!(
            join_words(&w(&["show", "paths", "format", "%n %w"])).unwrap(),
            "show paths format \"%n %w\" \n"
        );
        // IBM block CSI's argv
        assert_eq!(
            join_words(&w(&["show", "maps", "raw", "format", "\"", "%d,%w", "\""])).unwrap(),
            "show maps raw format \" %d,%w \" \n"
        );
    }

    #[test]
    fn command_size_limit() {
        let long = "x".repeat(158);
        assert_eq!(join_words(std::slice::from_ref(&long)).unwrap(), format!("{long} "));
        assert_eq!(
            join_words(&[long[..157].to_string()]).unwrap(),
            format!("{} \n", &long[..157])
        );
        assert_eq!(join_words(&["x".repeat(159)]), Err("multipathd command too large"));
    }

    #[test]
    fn mode_from_command_line() {
        assert_eq!(ClientMode::from_cli(None, vec![]), None);
        assert_eq!(
            ClientMode::from_cli(None, w(&["show", "paths"])),
            Some(ClientMode::Words(w(&["show", "paths"])))
        );
        assert_eq!(ClientMode::from_cli(Some(None), vec![]), Some(ClientMode::Interactive));
        assert_eq!(
            ClientMode::from_cli(Some(Some("resize map x".into())), w(&["ignored"])),
            Some(ClientMode::Verbatim("resize map x".into()))
        );
    }

    #[test]
    fn env_socket_name_is_abstract_with_at() {
        assert_eq!(SocketName::from_env_value("@foo"), SocketName::Abstract("foo".into()));
        assert_eq!(SocketName::from_env_value("/tmp/s"), SocketName::Path("/tmp/s".into()));
    }
}
