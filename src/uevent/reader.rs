//! The uevent reader thread: a NETLINK_KOBJECT_UEVENT socket feeding a channel.

use std::io::{self, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use crossbeam_channel::Sender;
use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{
    AddressFamily, ControlMessageOwned, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType, bind, recvmsg,
    setsockopt, socket, sockopt,
};

use super::{Uevent, parse};
use crate::polled_thread::PolledThread;

/// Netlink multicast group of the kernel's own uevents.
pub const UEVENT_GROUP_KERNEL: u32 = 1;
/// Netlink multicast group udevd re-broadcasts processed events on.
pub const UEVENT_GROUP_UDEV: u32 = 2;

/// Receive buffer asked for, as upstream does, so storms are not dropped by the kernel.
const RCVBUF: usize = 128 * 1024 * 1024;
/// Largest uevent message: the kernel caps them at 2 KiB of env, udevd adds properties.
const MSG_MAX: usize = 64 * 1024;

fn open_socket(group: u32) -> io::Result<OwnedFd> {
    if !(1..=32).contains(&group) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("uevent netlink group {group} out of range 1..=32"),
        ));
    }
    let fd = socket(
        AddressFamily::Netlink,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        SockProtocol::NetlinkKObjectUEvent,
    )?;
    // Forcing the size needs CAP_NET_ADMIN; fall back to the capped ordinary size.
    if setsockopt(&fd, sockopt::RcvBufForce, &RCVBUF).is_err() {
        setsockopt(&fd, sockopt::RcvBuf, &RCVBUF)?;
    }
    setsockopt(&fd, sockopt::PassCred, &true)?;
    bind(fd.as_raw_fd(), &NetlinkAddr::new(0, 1 << (group - 1)))?;
    Ok(fd)
}

/// Opens a uevent socket bound to `group` (1 kernel, 2 udev) and spawns a thread
/// that sends every accepted event to `tx`. Messages not from root, from the wrong
/// sender for the group, or unparsable are logged and skipped. The thread ends on
/// `stop`, on drop of the handle, or when the receiver is gone.
pub fn spawn_reader(group: u32, tx: Sender<Uevent>) -> io::Result<PolledThread> {
    let sock = open_socket(group)?;
    PolledThread::spawn("uevent", move |wake| reader_loop(group, sock, wake, tx))
}

/// Why a received message is not trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Untrusted {
    NotRoot(u32),
    NoCredentials,
    NoAddress,
    KernelGroupFromPort(u32),
    UdevGroupFromKernelPort,
}

impl std::fmt::Display for Untrusted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Untrusted::NotRoot(u) => write!(f, "sender uid {u} is not root"),
            Untrusted::NoCredentials => f.write_str("no sender credentials"),
            Untrusted::NoAddress => f.write_str("no sender address"),
            Untrusted::KernelGroupFromPort(p) => write!(f, "kernel group message from port {p}"),
            Untrusted::UdevGroupFromKernelPort => f.write_str("udev group message from the kernel port"),
        }
    }
}

fn check_sender(group: u32, uid: Option<u32>, nl_pid: Option<u32>) -> Result<(), Untrusted> {
    match uid {
        Some(0) => {}
        Some(u) => return Err(Untrusted::NotRoot(u)),
        None => return Err(Untrusted::NoCredentials),
    }
    // Kernel messages come from port 0; udevd's from its own non-zero port.
    match (group, nl_pid) {
        (_, None) => Err(Untrusted::NoAddress),
        (UEVENT_GROUP_KERNEL, Some(0)) => Ok(()),
        (UEVENT_GROUP_KERNEL, Some(p)) => Err(Untrusted::KernelGroupFromPort(p)),
        (_, Some(0)) => Err(Untrusted::UdevGroupFromKernelPort),
        (_, Some(_)) => Ok(()),
    }
}

fn reader_loop(group: u32, sock: OwnedFd, wake: OwnedFd, tx: Sender<Uevent>) {
    let mut buf = vec![0u8; MSG_MAX];
    loop {
        let mut fds = [
            PollFd::new(sock.as_fd(), PollFlags::POLLIN),
            PollFd::new(wake.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(Errno::EINTR) => continue,
            Err(e) => {
                log::error!("uevent reader: poll failed: {e}");
                return;
            }
        }
        if fds[1].revents().is_some_and(|r| !r.is_empty()) {
            return;
        }
        // Drain everything queued before polling again.
        loop {
            let mut cmsg = nix::cmsg_space!(nix::sys::socket::UnixCredentials);
            let mut iov = [IoSliceMut::new(&mut buf)];
            let (len, uid, nl_pid, truncated) =
                match recvmsg::<NetlinkAddr>(sock.as_raw_fd(), &mut iov, Some(&mut cmsg), MsgFlags::empty()) {
                    Ok(m) => {
                        let uid = m.cmsgs().ok().and_then(|mut c| {
                            c.find_map(|c| match c {
                                ControlMessageOwned::ScmCredentials(cr) => Some(cr.uid()),
                                _ => None,
                            })
                        });
                        let truncated = m.flags.contains(MsgFlags::MSG_TRUNC);
                        (m.bytes, uid, m.address.map(|a| a.pid()), truncated)
                    }
                    Err(Errno::EAGAIN) => break,
                    Err(Errno::EINTR) => continue,
                    Err(Errno::ENOBUFS) => {
                        // The kernel dropped events: the daemon's periodic checks must catch up.
                        log::warn!("uevent reader: receive buffer overrun, events were lost");
                        continue;
                    }
                    Err(e) => {
                        log::error!("uevent reader: recvmsg failed: {e}");
                        return;
                    }
                };
            if truncated {
                log::warn!("uevent reader: dropped a message larger than {MSG_MAX} bytes");
                continue;
            }
            if let Err(why) = check_sender(group, uid, nl_pid) {
                log::warn!("uevent reader: ignored message: {why}");
                continue;
            }
            match parse(&buf[..len]) {
                Ok(ev) => {
                    if tx.send(ev).is_err() {
                        return;
                    }
                }
                Err(e) => log::warn!("uevent reader: ignored message: {e}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sender_checks() {
        assert_eq!(check_sender(1, Some(0), Some(0)), Ok(()));
        assert_eq!(check_sender(2, Some(0), Some(4711)), Ok(()));
        assert_eq!(check_sender(1, Some(1000), Some(0)), Err(Untrusted::NotRoot(1000)));
        assert_eq!(Untrusted::NotRoot(1000).to_string(), "sender uid 1000 is not root");
        assert_eq!(check_sender(1, None, Some(0)), Err(Untrusted::NoCredentials));
        assert_eq!(
            check_sender(1, Some(0), Some(77)),
            Err(Untrusted::KernelGroupFromPort(77))
        );
        assert_eq!(
            check_sender(2, Some(0), Some(0)),
            Err(Untrusted::UdevGroupFromKernelPort)
        );
        assert_eq!(check_sender(2, Some(0), None), Err(Untrusted::NoAddress));
    }

    #[test]
    fn bad_group_is_refused() {
        let (tx, _rx) = crossbeam_channel::unbounded();
        let e = spawn_reader(0, tx).err().unwrap();
        assert_eq!(e.to_string(), "uevent netlink group 0 out of range 1..=32");
    }
}
