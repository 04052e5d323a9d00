//! Socket framing shared by the server and the client.
//!
//! Each message is a native-endian `usize` length followed by that many payload bytes;
//! the length counts a trailing NUL. Requests are 1..=512 bytes, replies below 32 MiB.
//! All blocking reads and writes are bounded by a deadline, enforced with `poll`.

use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::time::Instant;

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

/// Largest request the server accepts, NUL included.
pub const MAX_CMD_LEN: usize = 512;
/// Replies must be shorter than this, NUL included.
pub const MAX_REPLY_LEN: usize = 32 * 1024 * 1024;
/// Size of the length header.
pub const LEN_SIZE: usize = std::mem::size_of::<usize>();

/// Why a frame could not be sent or received.
#[derive(Debug)]
pub enum FrameError {
    /// The deadline passed first.
    Timeout,
    /// The peer closed the connection.
    Closed,
    /// The announced length is outside the allowed range.
    BadLength(usize),
    Io(io::Error),
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::Timeout => write!(f, "timed out"),
            FrameError::Closed => write!(f, "connection closed by peer"),
            FrameError::BadLength(n) => write!(f, "invalid message length {n}"),
            FrameError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for FrameError {}

impl From<io::Error> for FrameError {
    fn from(e: io::Error) -> Self {
        FrameError::Io(e)
    }
}

/// Encode `text` as one frame: length (text + NUL) then text then NUL.
pub fn encode(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(LEN_SIZE + text.len() + 1);
    out.extend_from_slice(&(text.len() + 1).to_ne_bytes());
    out.extend_from_slice(text.as_bytes());
    out.push(0);
    out
}

/// Decode a length header.
pub fn decode_len(header: [u8; LEN_SIZE]) -> usize {
    usize::from_ne_bytes(header)
}

/// The text of a payload: everything before the first NUL (a peer may omit the NUL,
/// in which case the whole payload is the text).
pub fn payload_text(payload: &[u8]) -> String {
    let end = payload.iter().position(|&b| b == 0).unwrap_or(payload.len());
    String::from_utf8_lossy(&payload[..end]).into_owned()
}

fn wait(fd: &impl AsFd, flags: PollFlags, deadline: Instant) -> Result<(), FrameError> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(FrameError::Timeout);
        }
        let ms = u16::try_from(left.as_millis().max(1)).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(fd.as_fd(), flags)];
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(0) => continue,
            Ok(_) => return Ok(()),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(FrameError::Io(e.into())),
        }
    }
}

fn read_exact_by<S: Read + AsFd>(s: &mut S, buf: &mut [u8], deadline: Instant) -> Result<(), FrameError> {
    let mut done = 0;
    while done < buf.len() {
        wait(s, PollFlags::POLLIN, deadline)?;
        match s.read(&mut buf[done..]) {
            Ok(0) => return Err(FrameError::Closed),
            Ok(n) => done += n,
            Err(e) if matches!(e.kind(), io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Send `text` as one frame before `deadline`.
pub fn send_frame<S: Write + AsFd>(s: &mut S, text: &str, deadline: Instant) -> Result<(), FrameError> {
    let frame = encode(text);
    let mut done = 0;
    while done < frame.len() {
        wait(s, PollFlags::POLLOUT, deadline)?;
        match s.write(&frame[done..]) {
            Ok(0) => return Err(FrameError::Closed),
            Ok(n) => done += n,
            Err(e) if matches!(e.kind(), io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Receive one frame whose length must lie in `1..max_len` (exclusive upper bound, as
/// for replies) and return its text.
pub fn recv_frame<S: Read + AsFd>(s: &mut S, max_len: usize, deadline: Instant) -> Result<String, FrameError> {
    let mut header = [0u8; LEN_SIZE];
    read_exact_by(s, &mut header, deadline)?;
    let len = decode_len(header);
    if len == 0 || len >= max_len {
        return Err(FrameError::BadLength(len));
    }
    let mut payload = vec![0u8; len];
    read_exact_by(s, &mut payload, deadline)?;
    Ok(payload_text(&payload))
}

/// Receive a reply (length 1..32 MiB).
pub fn recv_reply<S: Read + AsFd>(s: &mut S, deadline: Instant) -> Result<String, FrameError> {
    recv_frame(s, MAX_REPLY_LEN, deadline)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixStream;
    use std::time::Duration;

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(2)
    }

    #[test]
    fn frame_counts_the_nul() {
        let f = encode("show paths");
        assert_eq!(decode_len(f[..LEN_SIZE].try_into().unwrap()), 11);
        assert_eq!(&f[LEN_SIZE..], b"show paths\0");
    }

    #[test]
    fn round_trip_over_socketpair() {
        let (mut a, mut b) = UnixStream::pair().unwrap();
        send_frame(&mut a, "ok\n", soon()).unwrap();
        assert_eq!(recv_reply(&mut b, soon()).unwrap(), "ok\n");
    }

    #[test]
    fn reply_length_zero_and_huge_are_rejected() {
        let (mut a, mut b) = UnixStream::pair().unwrap();
        a.write_all(&0usize.to_ne_bytes()).unwrap();
        assert!(matches!(recv_reply(&mut b, soon()), Err(FrameError::BadLength(0))));
        a.write_all(&MAX_REPLY_LEN.to_ne_bytes()).unwrap();
        assert!(matches!(recv_reply(&mut b, soon()), Err(FrameError::BadLength(n)) if n == MAX_REPLY_LEN));
    }

    #[test]
    fn silent_peer_times_out_and_closed_peer_is_reported() {
        let (a, mut b) = UnixStream::pair().unwrap();
        let r = recv_reply(&mut b, Instant::now() + Duration::from_millis(20));
        assert!(matches!(r, Err(FrameError::Timeout)));
        drop(a);
        assert!(matches!(recv_reply(&mut b, soon()), Err(FrameError::Closed)));
    }

    #[test]
    fn payload_without_nul_is_whole_text() {
        assert_eq!(payload_text(b"show paths\n"), "show paths\n");
        assert_eq!(payload_text(b"ok\n\0junk"), "ok\n");
    }
}
