//! What the state owner spends on the views it publishes for the CLI server, at 4,096
//! paths (1,024 maps of 4 paths): building a snapshot afresh, and publishing after a
//! message that changed nothing shown (every view compared after a command, none after
//! an idle tick, one map's after a check).

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use multipathd::daemon::owner::Change;

#[path = "../tests/common/mod.rs"]
mod common;

use common::dm::Harness;

const LUNS: u32 = 1024;
const HOSTS: u32 = 4;

fn bench(c: &mut Criterion) {
    let sys = common::FakeSys::new();
    // Its other fields keep the channels the owner sends on open.
    let mut h = Harness::coldplugged(&sys, LUNS, HOSTS);
    let owner = &mut h.owner;
    let (publisher, _feed) = multipathd::cli::snapshot::channel().expect("eventfd");
    owner.publish_to(publisher);
    assert_eq!(owner.snapshot().paths.len(), 4096);

    let mut g = c.benchmark_group("snapshot");
    g.bench_function("build 4096 paths", |b| b.iter(|| black_box(owner.snapshot())));
    g.bench_function("publish 4096 paths, nothing changed", |b| {
        b.iter(|| owner.publish(black_box(Change::All)))
    });
    // The 1 s tick with no countdown running: it touches no view, so nothing is compared.
    g.bench_function("tick and publish, nothing changed, 4096 paths", |b| {
        b.iter(|| {
            owner.tick();
            owner.publish(black_box(Change::Touched))
        })
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
