//! A path's removal and return announced by uevents, on the state owner's thread at
//! 4,096 paths (1,024 maps of 4, every path checked up once): each a batch of one
//! uevent as the run loop hands it over (`Owner::on_uevents`: the path dropped or
//! discovered, its map reloaded without or with it, the block devices `show devices`
//! lists brought up to date), then the publish after it. In a uevent storm (a remote
//! port's devices removed, then found again) the owner does this for every device.
//!
//! Not included: the real DM ioctls (the fake device-mapper of `tests/common/dm.rs`
//! records them), the kernel's sysfs (a tempdir with the same layout stands in for it;
//! the fake's own changes to it are not timed), the uevent reader's parsing, the new
//! path's check on the checker loop (its report to the owner is timed) and the channel
//! hops.

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use multipathd::checkers::state::PathState;
use multipathd::daemon::owner::Change;

#[path = "../tests/common/mod.rs"]
mod common;

use common::dm::Harness;
use common::scsi_uevent;

const LUNS: u32 = 1024;
const HOSTS: u32 = 4;

/// Whether the first LUN's map holds the device `devt` (major:minor) in its table.
fn map_holds(h: &Harness, devt: &str) -> bool {
    let dm = h.dm.lock().unwrap();
    dm.maps[&common::lun_wwid(0)]
        .params
        .split_whitespace()
        .any(|w| w == devt)
}

fn bench(c: &mut Criterion) {
    let sys = common::FakeSys::new();
    let mut h = Harness::coldplugged(&sys, LUNS, HOSTS);
    let (publisher, _feed) = multipathd::cli::snapshot::channel().expect("eventfd");
    h.owner.publish_to(publisher);
    // sda: the first LUN through host 1, the first of add_luns' disks
    let (dev, devt) = ("sda", (8, 0));
    // Each gives the owner's time alone: the fake kernel's sysfs changes are not timed.
    let gone = |h: &mut Harness| {
        sys.remove(dev, devt);
        let t = Instant::now();
        h.owner.on_uevents(vec![scsi_uevent("remove", dev, 1)]);
        h.owner.publish(Change::Touched);
        t.elapsed()
    };
    let back = |h: &mut Harness| {
        assert_eq!(sys.add_lun_path(0, 0, HOSTS), (dev.to_string(), devt));
        let t = Instant::now();
        h.owner.on_uevents(vec![scsi_uevent("add", dev, 1)]);
        h.owner.publish(Change::Touched);
        let took = t.elapsed();
        // the new path's first check, as the checker loop reports it
        let id = h.scheduled()[dev];
        let t = Instant::now();
        h.check(id, PathState::Up);
        h.owner.publish(Change::Touched);
        let took = took + t.elapsed();
        h.dm.lock().unwrap().take_calls();
        took
    };
    gone(&mut h);
    assert!(!map_holds(&h, "8:0"), "the map reloaded without sda");
    assert!(!h.owner.snapshot().paths.iter().any(|p| p.dev == dev));
    back(&mut h);
    assert!(map_holds(&h, "8:0"), "the map reloaded with sda again");
    assert_eq!(h.owner.snapshot().paths.len(), 4096);

    let mut g = c.benchmark_group("uevent_batch");
    g.bench_function("a path removed and added back, 4096 paths", |b| {
        b.iter_custom(|n| (0..n).map(|_| gone(&mut h) + back(&mut h)).sum())
    });
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
