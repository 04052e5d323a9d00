//! The daemon's run loop and CLI server in this process, as `run::run` starts them
//! but with no checker, uevent or signal thread: what those would send comes from
//! the test (shared by `tests/abuse_socket.rs` and the `cli_roundtrip` bench).

use std::os::unix::net::UnixListener;
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender, bounded, unbounded};
use multipathd::checkers::Control;
use multipathd::cli::server::{ServerConfig, ServerHandle, spawn};
use multipathd::daemon::owner::{LoadDone, Owner};
use multipathd::daemon::reload::Reloaded;
use multipathd::daemon::run::{Inbox, serve};
use multipathd::daemon::signals::SignalEvent;

/// The owner's loop on a thread of its own and the server answering from its views.
pub struct Served {
    pub server: ServerHandle,
    /// What the signal thread would send (`Shutdown` ends the loop).
    pub signals: Sender<SignalEvent>,
    /// Where the DM port sends the end of a reload that ran off the owner's thread.
    pub loads: Sender<LoadDone>,
    pub owner: JoinHandle<()>,
}

/// Publishes `owner`'s views to a server on `listener` (the run loop's request queue
/// of 64) and runs `run::serve` on a thread; `checker` (the owner's checker loop
/// end) and `reloads` (its configuration loads) are held or served there.
pub fn start(
    mut owner: Owner,
    checker: Receiver<Control>,
    reloads: Receiver<Reloaded>,
    listener: UnixListener,
    cfg: ServerConfig,
) -> Served {
    let (publisher, feed) = multipathd::cli::snapshot::channel().unwrap();
    let status_wanted = publisher.status_wanted();
    owner.publish_to(publisher);
    let (req_tx, req_rx) = bounded(64);
    let cfg = ServerConfig {
        views: Some(feed),
        ..cfg
    };
    let server = spawn(vec![listener], cfg, req_tx).unwrap();
    let (signals, sig_rx) = bounded(16);
    let (loads, loads_rx) = unbounded();
    let (uev_tx, uev_rx) = unbounded();
    let (res_tx, res_rx) = unbounded();
    let (ioerr_tx, ioerr_rx) = unbounded();
    let owner = std::thread::spawn(move || {
        let _keep = (checker, uev_tx, res_tx, ioerr_tx);
        let inbox = Inbox {
            signals: sig_rx,
            uevents: uev_rx,
            dm_events: crossbeam_channel::never(),
            checks: res_rx,
            ioerr: ioerr_rx,
            requests: req_rx,
            reloads,
            loads: loads_rx,
            status_wanted,
        };
        serve(&mut owner, inbox).expect("the owner loop ends by shutdown");
    });
    Served {
        server,
        signals,
        loads,
        owner,
    }
}

impl Served {
    /// Shuts the owner down as SIGTERM does, then stops the server.
    pub fn stop(self) {
        self.signals.send(SignalEvent::Shutdown).unwrap();
        self.owner.join().unwrap();
        self.server.stop();
    }
}
