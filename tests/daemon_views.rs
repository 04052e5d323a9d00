//! The views the state owner publishes stay what a fresh build makes of its records
//! while paths come and go: a removed or added path is taken out of or put into the
//! published list in place (`owner/views.rs`), not by comparing every view, so the
//! order, the maps' entries and `show devices` are checked here against a snapshot
//! built afresh after every batch of a long mixed sequence.

use std::collections::BTreeMap;

use multipathd::checkers::state::PathState;
use multipathd::cli::parse::Command;
use multipathd::cli::snapshot::Snapshot;
use multipathd::daemon::owner::Change;

mod common;

use common::dm::Harness;
use common::{FakeSys, scsi_uevent, sd_name};

const LUNS: u32 = 6;
const HOSTS: u32 = 4;

/// Disk `i` of [`FakeSys::add_luns`]: its name, dev_t and the SCSI host its uevent names.
fn disk(i: u32) -> (String, (u32, u32), u32) {
    (sd_name(i as usize), (8, i * 16), i % HOSTS + 1)
}

/// A small deterministic generator (xorshift), so that a failure names its step.
struct Steps(u64);

impl Steps {
    fn below(&mut self, n: u32) -> u32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % u64::from(n)) as u32
    }
}

#[test]
fn published_views_equal_a_fresh_build_while_paths_come_and_go() {
    let sys = FakeSys::new();
    let mut h = Harness::coldplugged(&sys, LUNS, HOSTS);
    let (publisher, feed) = multipathd::cli::snapshot::channel().unwrap();
    h.owner.publish_to(publisher);
    let mut snap = feed.newest().expect("published at once");
    let shows = [
        Command::ShowPaths,
        Command::ShowMapsJson,
        Command::ShowMapsStatus,
        Command::ShowDevices,
    ];
    let as_afresh = |snap: &Snapshot, h: &Harness, step: usize| {
        let fresh = h.owner.snapshot();
        for c in &shows {
            assert_eq!(snap.answer(c), fresh.answer(c), "step {step}: {c:?}");
        }
    };
    let mut ids: BTreeMap<String, u64> = h.ids.clone();
    let mut present = vec![true; (LUNS * HOSTS) as usize];
    let mut steps = Steps(0x9e37_79b9_7f4a_7c15);
    let (mut removed, mut added) = (0, 0);
    for step in 0..120 {
        // a check of a path, or a batch of up to three uevents
        if steps.below(4) == 0 {
            let live: Vec<&u64> = ids.values().collect();
            let id = *live[steps.below(live.len() as u32) as usize];
            let state = if steps.below(2) == 0 {
                PathState::Up
            } else {
                PathState::Down
            };
            h.check(id, state);
        } else {
            let mut batch: Vec<multipathd::uevent::Uevent> = Vec::new();
            for _ in 0..=steps.below(3) {
                let i = steps.below(LUNS * HOSTS);
                let (dev, devt, host) = disk(i);
                if batch.iter().any(|e| e.kernel_name() == dev) {
                    continue;
                }
                if present[i as usize] {
                    sys.remove(&dev, devt);
                    batch.push(scsi_uevent("remove", &dev, host));
                    removed += 1;
                } else {
                    assert_eq!(sys.add_lun_path(i / HOSTS, i % HOSTS, HOSTS), (dev.clone(), devt));
                    batch.push(scsi_uevent("add", &dev, host));
                    added += 1;
                }
                present[i as usize] ^= true;
            }
            h.owner.on_uevents(batch);
        }
        ids.extend(h.scheduled());
        ids.retain(|d, _| sys.sys("block").join(d).exists());
        h.dm.lock().unwrap().take_calls();
        h.owner.publish(Change::Touched);
        if let Some(s) = feed.newest() {
            snap = s;
        }
        as_afresh(&snap, &h, step);
    }
    assert!(removed > 30 && added > 30, "{removed} removed, {added} added");
}
