//! Reconfigure reads and parses multipath.conf on a thread of its own, so the state
//! owner keeps checking paths and answering commands meanwhile (a configuration
//! can take seconds to load: thousands of sections, slow regexes, a slow disk).
//!
//! The owner asks with [`Reloader::request`]; the result comes back on the channel
//! [`Reloader::new`] returns, which the run loop serves, and the owner hands it to
//! [`Reloader::finished`] to learn whether it is still wanted. One load runs at a
//! time: a request while one runs makes the running one stale (the files may have
//! changed after it read them), so its result is dropped and a fresh load starts.
//! A load still running at shutdown is abandoned: nothing waits for it.

use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, unbounded};

use crate::config::{self, ConfigError, LoadOptions, Loaded};

/// A finished load.
#[derive(Debug)]
pub struct Reloaded {
    generation: u64,
    pub result: Result<Loaded, ConfigError>,
    /// How long reading and parsing took.
    pub took: Duration,
}

/// The owner's handle on configuration loads.
pub struct Reloader {
    tx: Sender<Reloaded>,
    /// Requests made so far; the newest one's load is the one applied.
    requested: u64,
    /// The request whose load is running.
    running: Option<u64>,
}

impl Reloader {
    pub fn new() -> (Reloader, Receiver<Reloaded>) {
        let (tx, rx) = unbounded();
        (
            Reloader {
                tx,
                requested: 0,
                running: None,
            },
            rx,
        )
    }

    /// Asks for the configuration to be loaded from `opts`.
    pub fn request(&mut self, opts: &LoadOptions) {
        self.requested += 1;
        if self.running.is_none() {
            self.start(opts);
        } else {
            log::info!("reconfigure: a load is already running; a fresh one follows it");
        }
    }

    /// Takes a finished load: its result when it answers the newest request, `None`
    /// when a newer request came in meanwhile (a load for that one starts now).
    pub fn finished(&mut self, done: Reloaded, opts: &LoadOptions) -> Option<Reloaded> {
        self.running = None;
        if done.generation == self.requested {
            return Some(done);
        }
        self.start(opts);
        None
    }

    /// A load is running or about to.
    pub fn pending(&self) -> bool {
        self.running.is_some()
    }

    fn start(&mut self, opts: &LoadOptions) {
        let generation = self.requested;
        self.running = Some(generation);
        let job = {
            let (opts, tx) = (opts.clone(), self.tx.clone());
            move || load(generation, &opts, &tx)
        };
        if let Err(e) = std::thread::Builder::new().name("reconfigure".into()).spawn(job) {
            // Loading here blocks the owner for the parse, but still reconfigures.
            log::warn!("cannot start the reconfigure thread ({e}): loading the configuration in place");
            load(generation, opts, &self.tx);
        }
    }
}

fn load(generation: u64, opts: &LoadOptions, tx: &Sender<Reloaded>) {
    let start = Instant::now();
    let result = config::load(opts);
    // The receiver is gone once the daemon has shut down: nobody wants it then.
    let _ = tx.send(Reloaded {
        generation,
        result,
        took: start.elapsed(),
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(dir: &std::path::Path) -> LoadOptions {
        LoadOptions {
            path: dir.join("multipath.conf"),
            conf_dir: dir.join("conf.d"),
        }
    }

    #[test]
    fn a_newer_request_supersedes_the_running_load() {
        let dir = tempfile::tempdir().unwrap();
        let o = opts(dir.path());
        let (mut r, rx) = Reloader::new();
        assert!(!r.pending());
        r.request(&o);
        r.request(&o);
        assert!(r.pending());
        let first = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        // The first load is stale: dropped, and the second one starts.
        assert!(r.finished(first, &o).is_none());
        assert!(r.pending());
        let second = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        let done = r.finished(second, &o).expect("the newest load is applied");
        assert!(done.result.is_ok());
        assert!(!r.pending());
        assert!(rx.try_recv().is_err(), "only two loads ran");
    }
}
