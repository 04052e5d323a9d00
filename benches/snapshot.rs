//! What the state owner spends on the views it publishes for the CLI server, at 4,096
//! paths (1,024 maps of 4 paths): building a snapshot afresh, and publishing after a
//! message that changed nothing shown (every view compared after a command, none after
//! an idle tick, one map's after a check).

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use crossbeam_channel::unbounded;
use multipathd::config::parse_str;
use multipathd::daemon::owner::{Change, Env, ExistingMap, Load, MapOps, Outputs, Owner, PartitionMap};
use multipathd::dm::{DmError, MapUdev, Suspend};
use multipathd::marginal::thread::IoErrStat;

#[path = "../tests/common/mod.rs"]
mod common;

const LUNS: u32 = 1024;
const HOSTS: u32 = 4;

/// Maps are created; their status is the table's first group active.
struct FakeDm;

impl MapOps for FakeDm {
    fn list_maps(&mut self) -> Result<Vec<ExistingMap>, DmError> {
        Ok(Vec::new())
    }
    fn create_map(&mut self, _: &str, _: &str, _: u64, _: &str, _: MapUdev) -> Result<u32, DmError> {
        Ok(0)
    }
    fn reload_map(&mut self, _: &str, _: u64, _: &str, _: MapUdev, _: Suspend) -> Result<Load, DmError> {
        Ok(Load::Done)
    }
    fn message(&mut self, _: &str, _: &str) -> Result<(), DmError> {
        Ok(())
    }
    fn status(&mut self, name: &str) -> Result<String, DmError> {
        Err(DmError::Ioctl {
            op: "status",
            name: Some(name.to_string()),
            errno: nix::errno::Errno::ENXIO,
        })
    }
    fn remove_map(&mut self, _: &str, _: bool) -> Result<(), DmError> {
        Ok(())
    }
    fn open_count(&mut self, _: &str) -> Result<i32, DmError> {
        Ok(0)
    }
    fn partition_maps(&mut self, _: &str) -> Result<Vec<PartitionMap>, DmError> {
        Ok(Vec::new())
    }
    fn suspend(&mut self, _: &str, _: Suspend) -> Result<(), DmError> {
        Ok(())
    }
    fn resume(&mut self, _: &str, _: MapUdev) -> Result<(), DmError> {
        Ok(())
    }
}

fn bench(c: &mut Criterion) {
    let sys = common::FakeSys::new();
    for lun in 0..LUNS {
        let wwid = format!("3600a0980{lun:023x}");
        for host in 0..HOSTS {
            let i = lun * HOSTS + host;
            let dev = common::sd_name(i as usize);
            let devt = (8, i * 16);
            let mut disk = common::scsi_debug(&dev, devt, host + 1, lun, "active/optimized");
            disk.attrs = vec![("timeout", "30\n")];
            sys.add_scsi(&disk);
            let wwn = format!("0x{}", &wwid[1..]);
            sys.add_udev(devt, &[("ID_SERIAL", &wwid), ("ID_WWN", &wwn), ("ID_BUS", "scsi")]);
        }
    }
    let env = Env {
        sysfs: sys.root(),
        udev_dir: sys.udev(),
        dev_dir: sys.dev(),
        state_dir: sys.state(),
        ..Env::default()
    };
    let (chk_tx, _chk_rx) = unbounded();
    let (ioerr_tx, _) = unbounded();
    let cfg = parse_str("multipath.conf", "defaults {\n find_multipaths greedy\n}\n")
        .expect("parses")
        .config;
    let (reload, _reloads) = multipathd::daemon::reload::Reloader::new();
    let out = Outputs {
        checker: chk_tx,
        ioerr: IoErrStat::new(ioerr_tx),
        reload,
    };
    let mut owner = Owner::new(cfg, env, Box::new(FakeDm), out);
    owner.coldplug();
    assert_eq!(owner.counts(), ((LUNS * HOSTS) as usize, LUNS as usize));
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
    // Path ids are handed out from 1: this is a check of the first path.
    g.bench_function("publish after a check, 4096 paths", |b| {
        b.iter(|| owner.publish(black_box(Change::CheckOf(1))))
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
