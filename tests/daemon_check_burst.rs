//! The run loop (`run::serve`) in a storm: check outcomes that queued up while the owner
//! was busy are handled as one burst and published once, not once per path (each
//! snapshot holds every path's view), and a burst is bounded so that commands are served.

mod common;

use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, never, unbounded};
use multipathd::checkers::state::PathState;
use multipathd::cli::format::PathDmState;
use multipathd::cli::snapshot::{self, Snapshot};
use multipathd::daemon::run::{CHECK_BATCH, Inbox, serve};
use multipathd::daemon::signals::SignalEvent;

use common::FakeSys;
use common::dm::{Call, Harness, outcome};

/// How many of the first host's paths the snapshot shows failed in DM.
fn failed_of_host1(s: &Snapshot) -> usize {
    s.paths
        .iter()
        .filter(|p| p.hcil.is_some_and(|a| a.host == 1) && p.dm_state == PathDmState::Failed)
        .count()
}

/// Queues one down outcome for each of the first host's paths (one of every map), runs
/// the loop until the snapshot shows them all failed, and returns the snapshots
/// published for them, the DM calls made, and how many paths were queued.
fn storm(luns: u32) -> (u64, Vec<Call>, usize) {
    let sys = FakeSys::new();
    let mut h = Harness::coldplugged(&sys, luns, 2);
    let (publisher, feed) = snapshot::channel().expect("eventfd");
    h.owner.publish_to(publisher);
    let before = feed.newest().expect("the first snapshot");
    let host1: Vec<u64> = before
        .paths
        .iter()
        .filter(|p| p.hcil.is_some_and(|a| a.host == 1))
        .map(|p| h.ids[&p.dev])
        .collect();
    assert_eq!(host1.len(), luns as usize);
    let (checks, checks_rx) = unbounded();
    for &id in &host1 {
        checks.send(outcome(id, PathState::Down)).unwrap();
    }
    let (signals, signals_rx) = bounded(1);
    let (_uevents, uevents_rx) = unbounded();
    let (_ioerr, ioerr_rx) = unbounded();
    let (_requests, requests_rx) = unbounded();
    let mut owner = h.owner;
    let reloads = h.reloads;
    let looping = std::thread::spawn(move || {
        let inbox = Inbox {
            signals: signals_rx,
            uevents: uevents_rx,
            dm_events: crossbeam_channel::never(),
            checks: checks_rx,
            ioerr: ioerr_rx,
            requests: requests_rx,
            reloads,
            loads: never(),
            status_wanted: never(),
        };
        serve(&mut owner, inbox).expect("ends by shutdown");
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut newest = before.clone();
    while failed_of_host1(&newest) < host1.len() {
        assert!(
            Instant::now() < deadline,
            "not all failed: {}",
            failed_of_host1(&newest)
        );
        std::thread::sleep(Duration::from_millis(5));
        if let Some(s) = feed.newest() {
            newest = s;
        }
    }
    signals.send(SignalEvent::Shutdown).unwrap();
    looping.join().unwrap();
    let calls = h.dm.lock().unwrap().take_calls();
    (newest.generation - before.generation, calls, host1.len())
}

fn fail_path_messages(calls: &[Call]) -> usize {
    calls
        .iter()
        .filter(|c| matches!(c, Call::Message { msg, .. } if msg.starts_with("fail_path ")))
        .count()
}

#[test]
fn a_queued_burst_of_check_outcomes_is_published_once() {
    let (published, calls, paths) = storm(16);
    assert_eq!(fail_path_messages(&calls), paths, "every path failed in DM: {calls:?}");
    assert_eq!(published, 1, "one snapshot for the 16 queued outcomes");
}

#[test]
fn a_burst_is_cut_at_check_batch_outcomes() {
    let luns = (CHECK_BATCH + CHECK_BATCH / 2) as u32;
    let (published, calls, paths) = storm(luns);
    assert_eq!(fail_path_messages(&calls), paths);
    assert_eq!(published, 2, "{luns} queued outcomes: a full burst and the rest");
}
