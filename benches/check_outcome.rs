//! A finished check's whole cost on the state owner's thread, at 4,096 paths (1,024
//! maps of 4, every path checked up once): `Owner::on_check` of the outcome of one
//! path (the DM status read of its map it makes first, the path state machine, the
//! failback step, DM messages, rescheduling the path) and the publish after it (its
//! map and 4 paths rebuilt and compared when the check changed what they show, nothing
//! when it did not), as the run loop does for each outcome.
//!
//! Not included: the real DM ioctls (the fake device-mapper of `tests/common/dm.rs`
//! prints the status from the map's table instead, as the kernel would show it, and
//! records messages), the checker thread's own IO (TUR, directio) and its scheduling,
//! and the channel hops from the checker and to the CLI server.

use std::collections::BTreeSet;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use multipathd::checkers::Control;
use multipathd::checkers::state::PathState;
use multipathd::cli::format::{PathDmState, PathView};
use multipathd::daemon::owner::Change;
use multipathd::daemon::run::CHECK_BATCH;

#[path = "../tests/common/mod.rs"]
mod common;

use common::dm::{Call, Harness};

const LUNS: u32 = 1024;
const HOSTS: u32 = 4;
/// The checker's id of sda, the first LUN's path through host 1 (ids count from 1).
const ID: u64 = 1;

/// A check of path [`ID`] as the run loop handles it: the outcome, then the publish;
/// what the owner sent the checker loop is dropped, as that loop takes it.
fn check(h: &mut Harness, state: PathState) {
    h.check(ID, state);
    h.owner.publish(Change::Touched);
    h.checker.try_iter().count();
}

/// The kernel's state of `dev` as the owner shows it.
fn dm_state(h: &Harness, dev: &str) -> PathDmState {
    let snap = h.owner.snapshot();
    snap.paths.iter().find(|p| p.dev == dev).expect("a path").dm_state
}

fn bench(c: &mut Criterion) {
    let sys = common::FakeSys::new();
    let mut h = Harness::coldplugged(&sys, LUNS, HOSTS);
    let (publisher, _feed) = multipathd::cli::snapshot::channel().expect("eventfd");
    h.owner.publish_to(publisher);
    h.check(ID, PathState::Up);
    assert!(
        matches!(h.controls()[..], [Control::Again { path: ID, .. }]),
        "checked and to be checked again"
    );
    // Each check reads its map's status: the kernel failing sdb on its own shows.
    let map = common::lun_wwid(0);
    let fail_sdb = |h: &Harness, failed: bool| {
        let mut dm = h.dm.lock().unwrap();
        let m = dm.maps.get_mut(&map).expect("the first LUN's map, named by its WWID");
        if failed {
            m.failed.insert("8:16".into())
        } else {
            m.failed.remove("8:16")
        }
    };
    fail_sdb(&h, true);
    check(&mut h, PathState::Up);
    assert_eq!(dm_state(&h, "sdb"), PathDmState::Failed);
    fail_sdb(&h, false);
    check(&mut h, PathState::Up);
    assert_eq!(dm_state(&h, "sdb"), PathDmState::Active);
    assert_eq!(h.dm.lock().unwrap().take_calls(), [], "a steady path sends DM nothing");
    let message = |msg: &str| Call::Message {
        name: map.clone(),
        msg: msg.into(),
    };
    check(&mut h, PathState::Down);
    assert_eq!(h.dm.lock().unwrap().take_calls(), [message("fail_path 8:0")]);
    check(&mut h, PathState::Up);
    assert_eq!(h.dm.lock().unwrap().take_calls(), [message("reinstate_path 8:0")]);

    let mut g = c.benchmark_group("check_outcome");
    g.throughput(Throughput::Elements(1));
    g.bench_function("path checked up again, 4096 paths", |b| {
        b.iter(|| check(&mut h, black_box(PathState::Up)))
    });
    // Two outcomes an iteration: failed in DM, then reinstated.
    g.throughput(Throughput::Elements(2));
    g.bench_function("path down then up again, 4096 paths", |b| {
        b.iter(|| {
            check(&mut h, black_box(PathState::Down));
            check(&mut h, black_box(PathState::Up));
            h.dm.lock().unwrap().take_calls()
        })
    });
    // A storm: the first host's 1,024 paths (one of every map) checked down one after
    // another, then up again, published as the run loop does: after each outcome when
    // it keeps up with the checkers, after each burst of `CHECK_BATCH` queued ones when
    // it does not.
    let first_host = |p: &&Arc<PathView>| p.hcil.is_some_and(|a| a.host == 1);
    let storm: Vec<u64> = h
        .owner
        .snapshot()
        .paths
        .iter()
        .filter(first_host)
        .map(|p| h.ids[&p.dev])
        .collect();
    let storm_round = |h: &mut Harness, state: PathState, burst: usize| {
        for ids in storm.chunks(burst) {
            for &id in ids {
                h.check(id, state);
            }
            h.owner.publish(Change::Touched);
        }
        h.checker.try_iter().count();
        h.dm.lock().unwrap().take_calls()
    };
    let maps_messaged = |calls: &[Call], verb: &str| {
        let names: BTreeSet<&str> = calls
            .iter()
            .filter_map(|c| match c {
                Call::Message { name, msg } if msg.starts_with(verb) => Some(name.as_str()),
                _ => None,
            })
            .collect();
        (calls.len(), names.len())
    };
    let n = LUNS as usize;
    for burst in [1, CHECK_BATCH] {
        let down = storm_round(&mut h, PathState::Down, burst);
        assert_eq!(
            maps_messaged(&down, "fail_path "),
            (n, n),
            "one path of every map failed"
        );
        let up = storm_round(&mut h, PathState::Up, burst);
        assert_eq!(maps_messaged(&up, "reinstate_path "), (n, n), "and reinstated");
    }
    g.throughput(Throughput::Elements(2 * u64::from(LUNS)));
    for (burst, name) in [
        (1, "a host's 1024 paths down then up, published after each, 4096 paths"),
        (
            CHECK_BATCH,
            "a host's 1024 paths down then up, published per queued burst, 4096 paths",
        ),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| {
                storm_round(&mut h, black_box(PathState::Down), burst);
                storm_round(&mut h, black_box(PathState::Up), burst)
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
