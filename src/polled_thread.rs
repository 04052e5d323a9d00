//! A thread that waits in poll(2) on its own sources and on an eventfd its handle holds,
//! so that the handle can end it at once however quiet the sources are (the uevent
//! reader, the dm event thread).

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::thread::JoinHandle;

use nix::sys::eventfd::{EfdFlags, EventFd};

/// The running thread; it ends on `stop` or on drop of the handle (both wait for it),
/// or on its own.
pub struct PolledThread {
    name: &'static str,
    wake: EventFd,
    thread: Option<JoinHandle<()>>,
}

impl PolledThread {
    /// Starts `body` on a thread called `name`, with the eventfd to poll beside its
    /// sources: once that is readable, the body returns.
    pub fn spawn(name: &'static str, body: impl FnOnce(OwnedFd) + Send + 'static) -> io::Result<PolledThread> {
        let wake = EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)?;
        let wake_fd = wake.as_fd().try_clone_to_owned()?;
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || body(wake_fd))?;
        Ok(PolledThread {
            name,
            wake,
            thread: Some(thread),
        })
    }

    /// Wakes the thread and waits for it to end.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(t) = self.thread.take() {
            if let Err(e) = self.wake.write(1) {
                // Joining a thread that was not told to end would hang the caller.
                log::error!("{} thread: cannot wake it: {e}", self.name);
                return;
            }
            if t.join().is_err() {
                log::error!("{} thread panicked", self.name);
            }
        }
    }
}

impl Drop for PolledThread {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    use std::sync::mpsc;

    /// A body that polls only the wake-up eventfd, and tells when it has returned.
    fn spawn_waiting(done: mpsc::Sender<()>) -> PolledThread {
        PolledThread::spawn("test", move |wake| {
            let mut fds = [PollFd::new(wake.as_fd(), PollFlags::POLLIN)];
            poll(&mut fds, PollTimeout::NONE).unwrap();
            done.send(()).unwrap();
        })
        .unwrap()
    }

    #[test]
    fn stop_ends_a_thread_waiting_in_poll_and_waits_for_it() {
        let (tx, rx) = mpsc::channel();
        let t = spawn_waiting(tx);
        assert_eq!(rx.try_recv(), Err(mpsc::TryRecvError::Empty));
        t.stop();
        assert_eq!(rx.try_recv(), Ok(()));
    }

    #[test]
    fn dropping_the_handle_ends_the_thread_too() {
        let (tx, rx) = mpsc::channel();
        drop(spawn_waiting(tx));
        assert_eq!(rx.try_recv(), Ok(()));
    }

    #[test]
    fn a_thread_that_ended_on_its_own_is_stopped_without_waiting() {
        let (tx, rx) = mpsc::channel();
        let t = PolledThread::spawn("test", move |_wake| tx.send(()).unwrap()).unwrap();
        rx.recv().unwrap();
        t.stop();
    }
}
