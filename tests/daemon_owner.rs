//! The daemon's state owner driven with fakes: an in-memory device-mapper that
//! records every call (`common/dm.rs`), a scsi_debug-shaped sysfs tree, a udev
//! database and a state directory in a tempdir. No checker or uevent threads: the
//! test feeds the owner the messages those threads would send and inspects what it
//! sends back.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;
use std::time::Duration;

use crossbeam_channel::{Receiver, unbounded};
use multipathd::checkers::state::{PathState, Verdict};
use multipathd::checkers::{CheckOutcome, CheckerKind, Control, Link};
use multipathd::cli::format::DaemonState;
use multipathd::cli::parse::{Command, HandlerError};
use multipathd::daemon::owner::{Env, LoadDone, LoadKind, Owner};
use multipathd::dm::table::MultipathTable;
use multipathd::dm::{MapUdev, Suspend};
use multipathd::marginal::engine::fake::{FakeEngine, FakeRead};
use multipathd::marginal::sampler::Counts;
use multipathd::marginal::thread::{Cmd, IoErrEvent, Spawner, spawn_io_err_stat_with};
use multipathd::persist::PrOutcome;
use multipathd::uevent::Uevent;

mod common;

use common::dm::{Call, DmState, Harness, config};
use common::{FakeSys, SECTORS, scsi_debug, scsi_uevent, uevent};

const WWID: &str = "333333330000007d0";

// ---- fake system -----------------------------------------------------------

/// One scsi_debug LUN as seen through one host.
struct Disk<'a> {
    dev: &'a str,
    devt: (u32, u32),
    host: u32,
    lun: u32,
    wwid: &'a str,
    access_state: &'a str,
}

// What the state owner needs of the fake system besides sysfs.
impl FakeSys {
    /// sysfs block and SCSI device dirs plus the udev record, as scsi_debug with
    /// the ALUA device handler attached looks.
    fn add(&self, d: &Disk) {
        let mut disk = scsi_debug(d.dev, d.devt, d.host, d.lun, d.access_state);
        disk.attrs = vec![("dh_state", "alua\n"), ("timeout", "30\n")];
        self.add_scsi(&disk);
        let wwn = format!("0x{}", &d.wwid[1..]);
        self.add_udev(d.devt, &[("ID_SERIAL", d.wwid), ("ID_WWN", &wwn), ("ID_BUS", "scsi")]);
    }

    fn bindings(&self) -> String {
        fs::read_to_string(self.state().join("bindings")).unwrap_or_default()
    }
}

/// The lab's 2-path scsi_debug LUN: `a` through host 1 (non-optimized), `b`
/// through host 0 (optimized).
fn two_paths(f: &FakeSys, a: &str, b: &str) {
    f.add(&Disk {
        dev: a,
        devt: (8, 0),
        host: 1,
        lun: 0,
        wwid: WWID,
        access_state: "active/non-optimized",
    });
    f.add(&Disk {
        dev: b,
        devt: (8, 16),
        host: 0,
        lun: 0,
        wwid: WWID,
        access_state: "active/optimized",
    });
}

// ---- harness -----------------------------------------------------------------

const GREEDY: &str = "defaults {\n user_friendly_names yes\n find_multipaths greedy\n}\n";

/// The table the reference daemon loads for the lab LUN: the optimized path's group first.
const TWO_PATH_TABLE: &str = "0 1 alua 2 1 service-time 0 1 1 8:16 1 service-time 0 1 1 8:0 1";

impl Harness {
    fn new(f: &FakeSys, conf: &str, dm: DmState) -> Harness {
        Harness::with_ioerr(f, conf, dm, None)
    }

    /// With the io-err-stat thread started by `spawn` (None: the daemon's, over the
    /// kernel AIO engine).
    fn with_ioerr(f: &FakeSys, conf: &str, dm: DmState, spawn: Option<Spawner>) -> Harness {
        Harness::with_env(f.env(), conf, dm, spawn)
    }

    /// Hands the owner the configuration load a reconfigure started, as the run loop
    /// does when it arrives.
    fn finish_reload(&mut self) {
        let done = self
            .reloads
            .recv_timeout(Duration::from_secs(10))
            .expect("the configuration load ends");
        self.owner.on_reloaded(done);
    }

    fn calls(&self) -> Vec<Call> {
        self.dm.lock().unwrap().take_calls()
    }

    /// Ends the oldest held reload of `map` as the kernel would (the new table live,
    /// every path in it active) and tells the owner, as the run loop does.
    fn end_load(&mut self, map: &str) {
        {
            let mut st = self.dm.lock().unwrap();
            let i = st.held.iter().position(|(n, ..)| n == map).expect("a reload is held");
            let (_, sectors, params) = st.held.remove(i);
            let m = st.maps.get_mut(map).expect("the map exists");
            m.sectors = sectors;
            m.params = params;
            m.failed.clear();
            m.switched = None;
        }
        self.owner.on_load_done(LoadDone {
            map: map.into(),
            kind: LoadKind::Reload,
            result: Ok(()),
            took: Duration::from_secs(40),
        });
    }

    /// What the creates, reloads and resumes since the last call told udev.
    fn udev(&self) -> Vec<(&'static str, String, MapUdev)> {
        std::mem::take(&mut self.dm.lock().unwrap().udev)
    }

    /// Mutating calls only (without `List`).
    fn changes(&self) -> Vec<Call> {
        self.calls().into_iter().filter(|c| *c != Call::List).collect()
    }

    fn cmd(&mut self, c: Command) -> String {
        self.owner.on_command(c).expect("command succeeds")
    }

    /// `show paths` rows as (dev, dm_st, chk_st) by device.
    fn path_rows(&mut self) -> BTreeMap<String, Vec<String>> {
        let out = self.cmd(Command::ShowPaths);
        out.lines()
            .skip(1)
            .map(|l| {
                let w: Vec<String> = l.split_whitespace().map(str::to_string).collect();
                (w[1].clone(), w)
            })
            .collect()
    }
}

fn path_failed(map: &str, devt: &str, seq: u64) -> Uevent {
    let seq = seq.to_string();
    uevent(&[
        ("ACTION", "change"),
        ("DEVPATH", "/devices/virtual/block/dm-0"),
        ("SUBSYSTEM", "block"),
        ("DEVNAME", "/dev/dm-0"),
        ("DM_TARGET", "multipath"),
        ("DM_ACTION", "PATH_FAILED"),
        ("DM_SEQNUM", &seq),
        ("DM_PATH", devt),
        ("DM_NR_VALID_PATHS", "1"),
        ("DM_NAME", map),
        ("DM_UUID", &format!("mpath-{WWID}")),
    ])
}

fn remove_uevent(dev: &str, host: u32) -> Uevent {
    scsi_uevent("remove", dev, host)
}

fn msg(name: &str, m: &str) -> Call {
    Call::Message {
        name: name.into(),
        msg: m.into(),
    }
}

// ---- tests ---------------------------------------------------------------------

#[test]
fn coldplug_two_alua_paths_creates_mpatha() {
    let f = FakeSys::new();
    two_paths(&f, "sda", "sdb");
    let mut h = Harness::new(&f, GREEDY, DmState::default());
    h.owner.coldplug();
    assert_eq!(
        h.calls(),
        vec![
            Call::List,
            Call::Create {
                name: "mpatha".into(),
                uuid: format!("mpath-{WWID}"),
                sectors: SECTORS,
                params: TWO_PATH_TABLE.into(),
            }
        ]
    );
    assert!(
        f.bindings()
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["mpatha", WWID]),
        "{}",
        f.bindings()
    );
    assert_eq!(h.owner.counts(), (2, 1));
    // Both paths are handed to the checker loop for an immediate first check, each with
    // the SCSI host it goes through.
    let sched: Vec<(String, Option<Link>, u32)> = h
        .controls()
        .into_iter()
        .filter_map(|c| match c {
            Control::Schedule { req, in_secs } => Some((req.dev.display().to_string(), req.link, in_secs)),
            _ => None,
        })
        .collect();
    let dev = f.dev();
    assert_eq!(
        sched,
        vec![
            (dev.join("sdb").display().to_string(), Some(Link::ScsiHost(0)), 0),
            (dev.join("sda").display().to_string(), Some(Link::ScsiHost(1)), 0)
        ]
    );
}

/// After a check that left a path's request as it was (checker, timeout, prioritizer,
/// nothing to register), the checker loop is told only when to check it again: no
/// request is built and sent for every check of every path.
#[test]
fn a_steady_check_sends_only_when_to_check_again() {
    let f = FakeSys::new();
    two_paths(&f, "sda", "sdb");
    let mut h = Harness::new(&f, GREEDY, DmState::default());
    h.owner.coldplug();
    let ids = h.scheduled();
    h.check(ids["sda"], PathState::Up);
    assert_eq!(
        h.controls(),
        [Control::Again {
            path: ids["sda"],
            in_secs: 5
        }]
    );
    h.check(ids["sda"], PathState::Up);
    assert_eq!(
        h.controls(),
        [Control::Again {
            path: ids["sda"],
            in_secs: 10
        }]
    );
}

/// A prioritizer that sends commands to the device (alua: RTPG, which hangs with a hung
/// path) never runs on the owner's thread: each path's first check computes it on the
/// checker's workers, and the map waits for both, then is created once, grouped by them.
#[test]
fn a_prioritizer_that_talks_to_the_device_runs_with_the_first_check() {
    let f = FakeSys::new();
    two_paths(&f, "sda", "sdb");
    let conf = "defaults {\n user_friendly_names yes\n find_multipaths greedy\n detect_prio no\n prio alua\n}\n";
    let mut h = Harness::new(&f, conf, DmState::default());
    h.owner.coldplug();
    assert_eq!(h.changes(), [], "no map before the paths' priorities are known");
    let mut ids = BTreeMap::new();
    for c in h.controls() {
        if let Control::Schedule { req, in_secs } = c {
            let job = req.prio.as_ref().map(|j| j.prio.name());
            assert_eq!((job, in_secs), (Some("alua"), 0), "{}", req.dev.display());
            ids.insert(req.dev.file_name().unwrap().to_string_lossy().into_owned(), req.path);
        }
    }
    let first = |h: &mut Harness, id: u64, prio: i32| {
        h.owner.on_check(CheckOutcome {
            path_id: id,
            result: Verdict::new(PathState::Up, ""),
            prio: Some(prio),
            pr: None,
            took: Duration::from_millis(1),
        })
    };
    first(&mut h, ids["sda"], 10);
    assert_eq!(h.changes(), [], "sdb's priority is still missing");
    first(&mut h, ids["sdb"], 50);
    assert_eq!(
        h.changes(),
        [Call::Create {
            name: "mpatha".into(),
            uuid: format!("mpath-{WWID}"),
            sectors: SECTORS,
            params: TWO_PATH_TABLE.into(),
        }]
    );
    // The map's paths are checked again, now as members.
    assert_eq!(h.scheduled().keys().collect::<Vec<_>>(), ["sda", "sdb"]);
}

/// A path removed while its map waits for its first priority does not hold the map back.
#[test]
fn a_map_waiting_for_a_removed_paths_priority_is_set_up_without_it() {
    let f = FakeSys::new();
    two_paths(&f, "sda", "sdb");
    let conf = "defaults {\n user_friendly_names yes\n find_multipaths greedy\n detect_prio no\n prio alua\n}\n";
    let mut h = Harness::new(&f, conf, DmState::default());
    h.owner.coldplug();
    let ids = h.scheduled();
    h.owner.on_check(CheckOutcome {
        path_id: ids["sdb"],
        result: Verdict::new(PathState::Up, ""),
        prio: Some(50),
        pr: None,
        took: Duration::from_millis(1),
    });
    assert_eq!(h.changes(), []);
    f.remove("sda", (8, 0));
    h.owner.on_uevents(vec![remove_uevent("sda", 1)]);
    assert_eq!(
        h.changes(),
        [Call::Create {
            name: "mpatha".into(),
            uuid: format!("mpath-{WWID}"),
            sectors: SECTORS,
            params: "0 1 alua 1 1 service-time 0 1 1 8:16 1".into(),
        }]
    );
}

/// A USB disk is skipped unless `allow_usb_devices yes` (upstream's default is no), and
/// `add path` answers it as blacklisted.
#[test]
fn usb_disks_are_left_out_unless_allowed() {
    let f = FakeSys::new();
    let mut disk = scsi_debug("sdc", (8, 32), 6, 0, "active/optimized");
    disk.parent = "pci0000:00/0000:00:14.0/usb2/2-1/2-1:1.0/host6/target6:0:0".to_string();
    f.add_scsi(&disk);
    let wwn = format!("0x{}", &WWID[1..]);
    f.add_udev((8, 32), &[("ID_SERIAL", WWID), ("ID_WWN", &wwn), ("ID_BUS", "scsi")]);
    let mut h = Harness::new(&f, GREEDY, DmState::default());
    h.owner.coldplug();
    assert_eq!(h.owner.counts(), (0, 0));
    assert_eq!(h.cmd(Command::AddPath { path: "sdc".into() }), "blacklisted\n");
    let allowed = "defaults {\n user_friendly_names yes\n find_multipaths greedy\n allow_usb_devices yes\n}\n";
    let mut h = Harness::new(&f, allowed, DmState::default());
    h.owner.coldplug();
    assert_eq!(h.owner.counts(), (1, 1));
}

#[test]
fn coldplug_adopts_an_existing_map_with_the_same_table() {
    let f = FakeSys::new();
    two_paths(&f, "sda", "sdb");
    let mut dm = DmState {
        next_minor: 3,
        ..Default::default()
    };
    dm.preload("mpathq", &format!("mpath-{WWID}"), TWO_PATH_TABLE);
    let mut h = Harness::new(&f, GREEDY, dm);
    h.owner.coldplug();
    assert_eq!(h.calls(), vec![Call::List], "adoption must neither create nor reload");
    assert_eq!(h.owner.counts(), (2, 1));
    let topo = h.cmd(Command::ShowMapsTopology);
    assert_eq!(
        topo.lines().next().unwrap(),
        format!("mpathq ({WWID}) dm-3 Linux,scsi_debug")
    );
}

#[test]
fn coldplug_reloads_an_existing_map_with_another_layout() {
    let f = FakeSys::new();
    two_paths(&f, "sda", "sdb");
    let mut dm = DmState::default();
    let old = "0 0 1 1 service-time 0 1 1 8:0 1";
    dm.preload("mpatha", &format!("mpath-{WWID}"), old);
    let mut h = Harness::new(&f, GREEDY, dm);
    h.owner.coldplug();
    assert_eq!(
        h.changes(),
        vec![Call::Reload {
            name: "mpatha".into(),
            sectors: SECTORS,
            params: TWO_PATH_TABLE.into()
        }]
    );
}

#[test]
fn coldplug_creates_the_new_maps_in_one_batch_once_the_existing_is_reloaded() {
    let f = FakeSys::new();
    f.add_luns(3, 2);
    let mut dm = DmState::default();
    let old = "0 0 1 1 service-time 0 1 1 8:0 1";
    dm.preload("mpathz", &format!("mpath-{}", common::lun_wwid(1)), old);
    let mut h = Harness::new(&f, GREEDY, dm);
    h.owner.coldplug();
    let calls: Vec<String> = h
        .calls()
        .into_iter()
        .map(|c| match c {
            Call::List => "list".to_string(),
            Call::Create { name, .. } => format!("create {name}"),
            Call::Reload { name, .. } => format!("reload {name}"),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(calls, ["list", "reload mpathz", "create mpatha", "create mpathb"]);
    assert_eq!(h.dm.lock().unwrap().batches, [["mpatha", "mpathb"]]);
    assert_eq!(h.owner.counts(), (6, 3));
}

#[test]
fn coldplug_names_and_creates_the_maps_in_the_order_of_their_first_path() {
    let f = FakeSys::new();
    // LUN 0 carries the larger WWID: SCSI address order and WWID order disagree.
    let wwids = [common::lun_wwid(7), common::lun_wwid(3)];
    for (lun, wwid) in wwids.iter().enumerate() {
        let devt = (8, 16 * lun as u32);
        let mut disk = common::scsi_debug(&common::sd_name(lun), devt, 1, lun as u32, "active/optimized");
        disk.attrs = vec![("timeout", "30\n")];
        f.add_scsi(&disk);
        let wwn = format!("0x{}", &wwid[1..]);
        f.add_udev(devt, &[("ID_SERIAL", wwid), ("ID_WWN", &wwn), ("ID_BUS", "scsi")]);
    }
    let mut h = Harness::new(&f, GREEDY, DmState::default());
    h.owner.coldplug();
    let dm = h.dm.lock().unwrap();
    assert_eq!(dm.batches, [["mpatha", "mpathb"]]);
    let made: Vec<(&str, &str, u32)> = dm
        .maps
        .iter()
        .map(|(n, m)| (n.as_str(), m.uuid.as_str(), m.minor))
        .collect();
    let uuids = wwids.map(|w| format!("mpath-{w}"));
    assert_eq!(
        made,
        [("mpatha", uuids[0].as_str(), 0), ("mpathb", uuids[1].as_str(), 1)]
    );
}

#[test]
fn coldplug_gives_an_alias_set_for_two_wwids_to_the_first() {
    let f = FakeSys::new();
    f.add_luns(2, 2);
    let (w0, w1) = (common::lun_wwid(0), common::lun_wwid(1));
    let conf = format!(
        "{GREEDY}multipaths {{\n multipath {{\n  wwid {w0}\n  alias data\n }}\n multipath {{\n  wwid {w1}\n  alias data\n }}\n}}\n"
    );
    let mut h = Harness::new(&f, &conf, DmState::default());
    h.owner.coldplug();
    let dm = h.dm.lock().unwrap();
    assert_eq!(
        dm.batches,
        [["data"]],
        "the second create of 'data' comes after the batch"
    );
    assert_eq!(dm.maps["data"].uuid, format!("mpath-{w0}"));
    assert_eq!(dm.maps.len(), 1);
}

/// The lab's 8 LUNs x 4 hosts as the kernel names them (host-major: host 0 gets
/// sda..sdh, host 3 sdy..sdaf), with the ALUA states scsi_debug reports there:
/// hosts 0 and 3 optimized, host 1 non-optimized, host 2 standby.
/// Returns (dev, `major:minor`, host, lun) in kernel (hcil) order.
fn lab_8x4(f: &FakeSys) -> Vec<(String, String, u32, u32)> {
    let mut out = Vec::new();
    for host in 0..4u32 {
        for lun in 0..8u32 {
            let i = host * 8 + lun;
            let dev = if i < 26 {
                format!("sd{}", (b'a' + i as u8) as char)
            } else {
                format!("sda{}", (b'a' + (i - 26) as u8) as char)
            };
            let devt = if i < 16 { (8, i * 16) } else { (65, (i - 16) * 16) };
            let state = [
                "active/optimized",
                "active/non-optimized",
                "standby",
                "active/optimized",
            ][host as usize];
            let wwid = format!("333333330000007d{lun}");
            f.add(&Disk {
                dev: &dev,
                devt,
                host,
                lun,
                wwid: &wwid,
                access_state: state,
            });
            out.push((dev, format!("{}:{}", devt.0, devt.1), host, lun));
        }
    }
    out
}

/// Creates in call order as (name, uuid, params).
fn creates(calls: Vec<Call>) -> Vec<(String, String, String)> {
    calls
        .into_iter()
        .map(|c| match c {
            Call::Create {
                name,
                uuid,
                params,
                sectors,
            } => {
                assert_eq!(sectors, SECTORS);
                (name, uuid, params)
            }
            other => panic!("unexpected {other:?}"),
        })
        .collect()
}

#[test]
fn eight_luns_by_four_paths_make_eight_maps() {
    let f = FakeSys::new();
    let disks = lab_8x4(&f);
    let mut h = Harness::new(&f, GREEDY, DmState::default());
    h.owner.coldplug();
    let creates = creates(h.changes());
    assert_eq!(creates.len(), 8);
    let bindings = f.bindings();
    for (lun, (name, uuid, params)) in creates.iter().enumerate() {
        // Aliases are handed out in WWID order, as the reference daemon did.
        assert_eq!(*name, format!("mpath{}", (b'a' + lun as u8) as char));
        let wwid = format!("333333330000007d{lun}");
        assert_eq!(*uuid, format!("mpath-{wwid}"));
        assert!(
            bindings.lines().any(|l| l == format!("{name} {wwid}")),
            "{name} {wwid} not in\n{bindings}"
        );
        let devt = |host: u32| {
            disks
                .iter()
                .find(|d| d.2 == host && d.3 == lun as u32)
                .unwrap()
                .1
                .clone()
        };
        let t = MultipathTable::parse(params).unwrap();
        let groups: Vec<BTreeSet<String>> = t
            .groups
            .iter()
            .map(|g| g.paths.iter().map(|p| p.dev.clone()).collect())
            .collect();
        // group_by_prio (detected from ALUA): 50 (hosts 0 and 3), 10 (host 1), 1 (host 2).
        assert_eq!(
            groups,
            vec![
                BTreeSet::from([devt(0), devt(3)]),
                BTreeSet::from([devt(1)]),
                BTreeSet::from([devt(2)])
            ],
            "{name}: {params}"
        );
        assert_eq!(t.hwhandler, ["alua"]);
        assert_eq!(t.initial_group, 1);
    }
    // Where device-name order and kernel order agree, the whole table is exact.
    assert_eq!(
        creates[0].2,
        "0 1 alua 3 1 service-time 0 2 1 8:0 1 65:128 1 service-time 0 1 1 8:128 1 service-time 0 1 1 65:0 1"
    );
    assert_eq!(h.owner.counts(), (32, 8));
    let maps = h.cmd(Command::ShowMaps);
    assert_eq!(maps.lines().count(), 9, "{maps}");
    assert_eq!(
        maps.lines().nth(8).unwrap().split_whitespace().collect::<Vec<_>>(),
        ["mpathh", "dm-7", "333333330000007d7"]
    );
}

/// Upstream keeps paths in udev enumeration order (sorted by sysfs devpath, i.e.
/// by host, then LUN), and both `show paths` and the order of paths inside a
/// group follow it. The owner keeps paths in a map keyed by device name, so
/// `sdaa` (host 3) sorts before `sdc` (host 0).
#[test]
fn paths_keep_kernel_order_like_the_reference_daemon() {
    let f = FakeSys::new();
    let disks = lab_8x4(&f);
    let mut h = Harness::new(&f, GREEDY, DmState::default());
    h.owner.coldplug();
    let creates = creates(h.changes());
    // LUN 2: host 0 is sdc (8:32), host 3 is sdaa (65:160).
    assert_eq!(
        creates[2].2,
        "0 1 alua 3 1 service-time 0 2 1 8:32 1 65:160 1 service-time 0 1 1 8:160 1 service-time 0 1 1 65:32 1"
    );
    let shown: Vec<String> = h
        .cmd(Command::ShowPaths)
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().nth(1).unwrap().to_string())
        .collect();
    let kernel: Vec<String> = disks.into_iter().map(|d| d.0).collect();
    assert_eq!(shown, kernel, "reference 8x4-show-paths.txt lists sda..sdz, sdaa..sdaf");
}

#[test]
fn find_multipaths_strict_needs_the_wwids_file() {
    let f = FakeSys::new();
    two_paths(&f, "sda", "sdb");
    let strict = "defaults {\n user_friendly_names yes\n find_multipaths strict\n}\n";
    let mut h = Harness::new(&f, strict, DmState::default());
    h.owner.coldplug();
    assert_eq!(h.calls(), vec![Call::List], "unknown WWID: no map");
    assert_eq!(h.owner.counts(), (2, 0));
    assert_eq!(f.bindings(), "", "no alias is taken for a WWID left alone");

    fs::write(
        f.state().join("wwids"),
        format!("# Multipath wwids, Version : 1.0\n/{WWID}/\n"),
    )
    .unwrap();
    let mut h = Harness::new(&f, strict, DmState::default());
    h.owner.coldplug();
    assert_eq!(
        creates(h.changes()),
        vec![("mpatha".into(), format!("mpath-{WWID}"), TWO_PATH_TABLE.into())]
    );
}

/// os-brick's connect with `find_multipaths strict`: the paths' add uevents come before
/// their WWID is known, so they stay orphans; then `multipath -a WWID` and
/// `multipathd add path /dev/sdX` for each path. Upstream's `add path` of a known path
/// outside any map adds it again (ev_add_path), which now creates the map (lab
/// osbrick_iscsi: ours answered `ok` and left the paths orphans).
#[test]
fn add_path_of_an_orphan_creates_its_map_once_the_wwid_is_known() {
    let f = FakeSys::new();
    two_paths(&f, "sda", "sdb");
    let strict = "defaults {\n user_friendly_names yes\n find_multipaths strict\n}\n";
    let mut h = Harness::new(&f, strict, DmState::default());
    h.owner.coldplug();
    assert_eq!(h.owner.counts(), (2, 0), "unknown WWID: two orphans");
    h.calls();
    assert_eq!(
        h.cmd(Command::AddPath {
            path: "/dev/sda".into()
        }),
        ""
    );
    assert_eq!(h.changes(), vec![], "WWID still unknown: still orphans");

    fs::write(
        f.state().join("wwids"),
        format!("# Multipath wwids, Version : 1.0\n/{WWID}/\n"),
    )
    .unwrap();
    assert_eq!(
        h.cmd(Command::AddPath {
            path: "/dev/sda".into()
        }),
        ""
    );
    assert_eq!(
        creates(h.changes()),
        vec![("mpatha".into(), format!("mpath-{WWID}"), TWO_PATH_TABLE.into())]
    );
    // The second path is in the map already: `ok`, nothing loaded.
    assert_eq!(
        h.cmd(Command::AddPath {
            path: "/dev/sdb".into()
        }),
        ""
    );
    assert_eq!(h.changes(), vec![]);
    assert_eq!(h.owner.counts(), (2, 1));
}

fn set_size(f: &FakeSys, dev: &str, sectors: u64) {
    fs::write(f.sys("block").join(dev).join("size"), format!("{sectors}\n")).unwrap();
}

/// os-brick's extend: the LUN grew, each path is rescanned, then `resize map /dev/dm-N`
/// (a reply with `fail` is an error). As upstream's cli_resize: `fail` while the paths'
/// sizes differ (only one rescanned: ours grew the map to the larger one, `ok`), a
/// reload with the new size once they agree, `ok` with nothing loaded when the map has
/// that size already.
#[test]
fn resize_map_needs_every_path_at_the_new_size() {
    let f = FakeSys::new();
    two_paths(&f, "sda", "sdb");
    let mut h = Harness::new(&f, GREEDY, DmState::default());
    h.owner.coldplug();
    h.calls();
    set_size(&f, "sda", 2 * SECTORS);
    assert_eq!(
        h.owner.on_command(Command::Resize {
            map: "/dev/dm-0".into()
        }),
        Err(HandlerError::Failed)
    );
    assert_eq!(h.changes(), vec![]);
    set_size(&f, "sdb", 2 * SECTORS);
    assert_eq!(
        h.cmd(Command::Resize {
            map: "/dev/dm-0".into()
        }),
        ""
    );
    // as upstream's ACT_RESIZE: queued IO flushed by the reload's suspend, udev rescans
    assert_eq!(
        h.changes(),
        vec![
            Call::ReloadFlushing { name: "mpatha".into() },
            Call::Reload {
                name: "mpatha".into(),
                sectors: 2 * SECTORS,
                params: TWO_PATH_TABLE.into()
            }
        ]
    );
    assert!(h.udev().iter().any(|(op, _, u)| *op == "reload" && u.rescan));
    assert_eq!(h.cmd(Command::Resize { map: "mpatha".into() }), "");
    assert_eq!(h.changes(), vec![], "still the same size: nothing loaded");
    // the next reload is no resize
    assert_eq!(h.cmd(Command::Reload { map: "mpatha".into() }), "");
    assert!(matches!(h.changes()[..], [Call::Reload { .. }]));
}

/// `reconfigure` (and `multipath -r`, which asks for it) applies a new size the paths
/// agree on, as upstream's reconfigure resizes the map (ACT_RESIZE); os-brick calls it
/// right before `resize map`, democratic-csi relies on it alone.
#[test]
fn reconfigure_takes_the_new_size_of_the_paths() {
    let f = FakeSys::new();
    two_paths(&f, "sda", "sdb");
    fs::write(f.conf(), GREEDY).unwrap();
    let mut h = Harness::new(&f, GREEDY, DmState::default());
    h.owner.coldplug();
    h.calls();
    set_size(&f, "sda", 2 * SECTORS);
    set_size(&f, "sdb", 2 * SECTORS);
    assert_eq!(h.cmd(Command::Reconfigure { all: false }), "");
    h.finish_reload();
    let rescans: Vec<bool> = h
        .udev()
        .into_iter()
        .filter(|u| u.0 == "reload")
        .map(|u| u.2.rescan)
        .collect();
    assert_eq!(rescans, [true], "a size change has udev rescan the map, as upstream");
    assert_eq!(
        h.changes(),
        vec![
            Call::ReloadFlushing { name: "mpatha".into() },
            Call::Reload {
                name: "mpatha".into(),
                sectors: 2 * SECTORS,
                params: TWO_PATH_TABLE.into()
            }
        ]
    );
    assert_eq!(h.cmd(Command::Resize { map: "mpatha".into() }), "");
    assert_eq!(h.changes(), vec![]);
}

/// `auto_resize` as upstream 0.14.3: the map takes its paths' new size at the change
/// uevent of the last path to report it, with no command; `grow_only` does not shrink,
/// `grow_shrink` does, `never` (the default) leaves it to `resize map`.
#[test]
fn auto_resize_follows_the_paths_once_all_report_the_new_size() {
    for (how, grown, shrunk) in [
        ("never", false, false),
        ("grow_only", true, false),
        ("grow_shrink", true, true),
    ] {
        let f = FakeSys::new();
        two_paths(&f, "sda", "sdb");
        let conf = GREEDY.replace("}\n", &format!(" auto_resize {how}\n}}\n"));
        let mut h = Harness::new(&f, &conf, DmState::default());
        h.owner.coldplug();
        h.calls();
        set_size(&f, "sda", 2 * SECTORS);
        h.owner.on_uevent(scsi_uevent("change", "sda", 1));
        assert_eq!(h.changes(), vec![], "{how}: one path of two grown");
        set_size(&f, "sdb", 2 * SECTORS);
        h.owner.on_uevent(scsi_uevent("change", "sdb", 0));
        let grow = vec![
            Call::ReloadFlushing { name: "mpatha".into() },
            Call::Reload {
                name: "mpatha".into(),
                sectors: 2 * SECTORS,
                params: TWO_PATH_TABLE.into(),
            },
        ];
        assert_eq!(h.changes(), if grown { grow } else { vec![] }, "{how}: both grown");
        for (dev, host) in [("sda", 1), ("sdb", 0)] {
            set_size(&f, dev, SECTORS / 2);
            h.owner.on_uevent(scsi_uevent("change", dev, host));
        }
        let sizes: Vec<u64> = h
            .changes()
            .into_iter()
            .filter_map(|c| match c {
                Call::Reload { sectors, .. } => Some(sectors),
                _ => None,
            })
            .collect();
        assert_eq!(
            sizes,
            if shrunk { vec![SECTORS / 2] } else { vec![] },
            "{how}: both shrunk"
        );
    }
}

/// Whether each reload since the last call asked udev for a rescan.
fn reload_rescans(h: &Harness) -> Vec<bool> {
    h.udev()
        .into_iter()
        .filter(|u| u.0 == "reload")
        .map(|u| u.2.rescan)
        .collect()
}

/// `reconfigure all`, as upstream's forced reload (FORCE_RELOAD_YES): every map is
/// reloaded for a udev rescan; a plain `reconfigure` leaves a map whose table does not
/// change as it is.
#[test]
fn reconfigure_all_reloads_every_map_for_a_udev_rescan() {
    let f = FakeSys::new();
    two_paths(&f, "sda", "sdb");
    fs::write(f.conf(), GREEDY).unwrap();
    let mut h = Harness::new(&f, GREEDY, DmState::default());
    h.owner.coldplug();
    h.udev();
    assert_eq!(h.cmd(Command::Reconfigure { all: false }), "");
    h.finish_reload();
    assert_eq!(reload_rescans(&h), Vec::<bool>::new());
    assert_eq!(h.cmd(Command::Reconfigure { all: true }), "");
    h.finish_reload();
    assert_eq!(reload_rescans(&h), [true]);
    assert_eq!(h.cmd(Command::Reconfigure { all: false }), "");
    h.finish_reload();
    assert_eq!(reload_rescans(&h), Vec::<bool>::new(), "`all` is spent");
}

/// `show maps stats`' map_loads of the one map.
fn map_loads(h: &mut Harness) -> String {
    let out = h.cmd(Command::ShowMapsStats);
    out.lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .nth(3)
        .unwrap()
        .to_string()
}

/// As upstream's select_action: `reconfigure` loads a map only when the new
/// configuration changes its table (here the selector), and a map left as it is
/// counts no load; the counters start again either way.
#[test]
fn reconfigure_loads_only_a_map_whose_table_changes() {
    let f = FakeSys::new();
    two_paths(&f, "sda", "sdb");
    fs::write(f.conf(), GREEDY).unwrap();
    let mut h = Harness::new(&f, GREEDY, DmState::default());
    h.owner.coldplug();
    h.calls();
    assert_eq!(map_loads(&mut h), "1");
    assert_eq!(h.cmd(Command::Reconfigure { all: false }), "");
    h.finish_reload();
    assert_eq!(h.changes(), vec![], "nothing changed, nothing loaded");
    assert_eq!(map_loads(&mut h), "0");
    let rr = GREEDY.replace("}\n", " path_selector \"round-robin 0\"\n}\n");
    fs::write(f.conf(), rr).unwrap();
    assert_eq!(h.cmd(Command::Reconfigure { all: false }), "");
    h.finish_reload();
    assert_eq!(
        h.changes(),
        vec![Call::Reload {
            name: "mpatha".into(),
            sectors: SECTORS,
            params: TWO_PATH_TABLE.replace("service-time", "round-robin")
        }]
    );
    assert_eq!(map_loads(&mut h), "1");
}

/// Upstream's reconfigure discovers its paths anew and asks no prioritizer of a path
/// whose device is not running: such a path gets a group of its own, priority 0,
/// last. When it runs again, its priority comes back and (group_by_prio with failback
/// immediate, as the lab's LIO LUNs have it) the map is regrouped.
#[test]
fn after_reconfigure_an_offline_path_has_a_group_of_its_own_until_it_comes_back() {
    let f = FakeSys::new();
    two_paths(&f, "sda", "sdb");
    f.add(&Disk {
        dev: "sdc",
        devt: (8, 32),
        host: 2,
        lun: 0,
        wwid: WWID,
        access_state: "active/optimized",
    });
    let conf = GREEDY.replace("}\n", " failback immediate\n}\n");
    fs::write(f.conf(), &conf).unwrap();
    let mut h = Harness::new(&f, &conf, DmState::default());
    h.owner.coldplug();
    let ids = h.scheduled();
    let whole = "0 1 alua 2 1 service-time 0 2 1 8:16 1 8:32 1 service-time 0 1 1 8:0 1";
    assert!(matches!(&h.changes()[..], [Call::Create { params, .. }] if params == whole));
    fs::write(f.sys("block/sdc/device/state"), "offline\n").unwrap();
    h.check(ids["sdc"], PathState::Down);
    h.calls();
    assert_eq!(h.cmd(Command::Reconfigure { all: false }), "");
    h.finish_reload();
    let apart = "0 1 alua 3 1 service-time 0 1 1 8:16 1 service-time 0 1 1 8:0 1 service-time 0 1 1 8:32 1";
    assert_eq!(
        h.changes(),
        vec![Call::Reload {
            name: "mpatha".into(),
            sectors: SECTORS,
            params: apart.into()
        }]
    );
    let topo = h.cmd(Command::ShowMapsTopology);
    assert!(
        topo.contains("`-+- policy='service-time 0' prio=0 status=enabled\n  `- 2:0:0:0 sdc"),
        "{topo}"
    );

    fs::write(f.sys("block/sdc/device/state"), "running\n").unwrap();
    h.controls();
    h.owner.on_check(CheckOutcome {
        path_id: ids["sdc"],
        result: Verdict::new(PathState::Up, ""),
        prio: Some(50),
        pr: None,
        took: Duration::from_millis(1),
    });
    for d in ["sda", "sdb"] {
        h.check(ids[d], PathState::Up);
    }
    let reloads: Vec<String> = h
        .changes()
        .into_iter()
        .filter_map(|c| match c {
            Call::Reload { params, .. } => Some(params),
            _ => None,
        })
        .collect();
    assert_eq!(reloads, [whole], "regrouped once its priority is known again");
}

/// A map adopted at start whose kernel would send IO to another group than the best
/// one is switched by message, not reloaded (upstream's ACT_SWITCHPG).
#[test]
fn an_adopted_map_on_another_group_is_switched_not_reloaded() {
    let f = FakeSys::new();
    two_paths(&f, "sda", "sdb");
    let mut dm = DmState {
        next_minor: 3,
        ..Default::default()
    };
    dm.preload("mpathq", &format!("mpath-{WWID}"), TWO_PATH_TABLE);
    dm.maps.get_mut("mpathq").unwrap().switched = Some(2);
    let mut h = Harness::new(&f, GREEDY, dm);
    h.owner.coldplug();
    assert_eq!(h.changes(), vec![msg("mpathq", "switch_group 1")]);
}

/// At start, as upstream's "udev incomplete": a map whose udev record lacks
/// `MPATH_DEVICE_READY=1` (udev killed, events lost: kpartx may never have run) is
/// reloaded for a rescan instead of adopted; a map udev finished with is adopted.
#[test]
fn coldplug_reloads_a_map_udev_never_finished_with_for_a_rescan() {
    for (ready, rescans) in [(Some("1"), vec![]), (Some("0"), vec![true]), (None, vec![true])] {
        let f = FakeSys::new();
        two_paths(&f, "sda", "sdb");
        let mut dm = DmState {
            next_minor: 3,
            ..Default::default()
        };
        dm.preload("mpathq", &format!("mpath-{WWID}"), TWO_PATH_TABLE);
        fs::create_dir_all(f.sys("block/dm-3")).unwrap();
        fs::write(f.sys("block/dm-3/dev"), "254:3\n").unwrap();
        let mut props = vec![("DM_NAME", "mpathq")];
        props.extend(ready.map(|r| ("MPATH_DEVICE_READY", r)));
        f.add_udev((254, 3), &props);
        let mut h = Harness::new(&f, GREEDY, dm);
        h.owner.coldplug();
        assert_eq!(reload_rescans(&h), rescans, "MPATH_DEVICE_READY={ready:?}");
        assert_eq!(h.owner.counts(), (2, 1));
    }
}

/// Upstream's daemon remembers the WWID of every map it sets up in the wwids file
/// (so `find_multipaths strict|yes` keeps claiming it after a restart and udev's
/// `multipath -u` reports the paths as multipath members).
#[test]
fn creating_a_map_remembers_its_wwid() {
    let f = FakeSys::new();
    two_paths(&f, "sda", "sdb");
    let mut h = Harness::new(&f, GREEDY, DmState::default());
    h.owner.coldplug();
    assert_eq!(creates(h.changes()).len(), 1);
    let wwids = fs::read_to_string(f.state().join("wwids")).unwrap_or_default();
    assert!(wwids.lines().any(|l| l == format!("/{WWID}/")), "wwids file:\n{wwids}");
}

/// Two equally good paths share one group; the kernel may list them in either
/// order. Upstream compares groups as sets of paths (`pgcmp`) and leaves such a
/// map alone at startup.
#[test]
fn adoption_ignores_path_order_inside_a_group() {
    let f = FakeSys::new();
    f.add(&Disk {
        dev: "sda",
        devt: (8, 0),
        host: 1,
        lun: 0,
        wwid: WWID,
        access_state: "active/optimized",
    });
    f.add(&Disk {
        dev: "sdb",
        devt: (8, 16),
        host: 0,
        lun: 0,
        wwid: WWID,
        access_state: "active/optimized",
    });
    let mut dm = DmState::default();
    dm.preload(
        "mpatha",
        &format!("mpath-{WWID}"),
        "0 1 alua 1 1 service-time 0 2 1 8:16 1 8:0 1",
    );
    let mut h = Harness::new(&f, GREEDY, dm);
    h.owner.coldplug();
    assert_eq!(h.changes(), vec![]);
}

#[test]
fn add_uevent_for_a_new_path_reloads_its_map() {
    let f = FakeSys::new();
    two_paths(&f, "sda", "sdb");
    let mut h = Harness::new(&f, GREEDY, DmState::default());
    h.owner.coldplug();
    h.calls();
    h.controls();
    f.add(&Disk {
        dev: "sdc",
        devt: (8, 32),
        host: 2,
        lun: 0,
        wwid: WWID,
        access_state: "standby",
    });
    h.owner.on_uevent(scsi_uevent("add", "sdc", 2));
    assert_eq!(
        h.changes(),
        vec![Call::Reload {
            name: "mpatha".into(),
            sectors: SECTORS,
            params: "0 1 alua 3 1 service-time 0 1 1 8:16 1 service-time 0 1 1 8:0 1 service-time 0 1 1 8:32 1".into(),
        }]
    );
    assert_eq!(h.owner.counts(), (3, 1));
    let sched = h.scheduled();
    assert!(sched.contains_key("sdc"), "the new path is checked: {sched:?}");
    // A second add for the same device changes nothing.
    h.owner.on_uevent(uevent(&[
        ("ACTION", "add"),
        (
            "DEVPATH",
            "/devices/pseudo_0/adapter2/host2/target2:0:0/2:0:0:0/block/sdc",
        ),
        ("SUBSYSTEM", "block"),
        ("DEVNAME", "/dev/sdc"),
    ]));
    assert_eq!(h.changes(), vec![]);
}

#[test]
fn show_commands_describe_the_map_and_its_paths() {
    let f = FakeSys::new();
    two_paths(&f, "sda", "sdb");
    let mut h = Harness::new(&f, GREEDY, DmState::default());
    h.owner.coldplug();
    let ids = h.scheduled();
    h.check(ids["sda"], PathState::Up);
    h.check(ids["sdb"], PathState::Up);

    let paths = h.cmd(Command::ShowPaths);
    let mut lines = paths.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["hcil", "dev", "dev_t", "pri", "dm_st", "chk_st", "dev_st", "next_check"]
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows.len(), 2, "{paths}");
    // SCSI address order, as the reference daemon lists them (vm-harness.md: sdb on host0 first).
    assert_eq!(
        rows[0][..7],
        ["0:0:0:0", "sdb", "8:16", "50", "active", "ready", "running"]
    );
    assert_eq!(
        rows[1][..7],
        ["1:0:0:0", "sda", "8:0", "10", "active", "ready", "running"]
    );

    // Exactly what Debian's multipathd 0.9.4 printed for this LUN in the lab VM
    // (vm-harness.md), `create:` action prefix included.
    assert_eq!(
        h.cmd(Command::ShowMapsTopology),
        format!(
            "create: mpatha ({WWID}) dm-0 Linux,scsi_debug\n\
             size=16M features='0' hwhandler='1 alua' wp=rw\n\
             |-+- policy='service-time 0' prio=50 status=active\n\
             | `- 0:0:0:0 sdb 8:16 active ready running\n\
             `-+- policy='service-time 0' prio=10 status=enabled\n  \
             `- 1:0:0:0 sda 8:0  active ready running\n"
        )
    );

    let json: serde_json::Value = serde_json::from_str(&h.cmd(Command::ShowMapsJson)).expect("valid JSON");
    let m = &json["maps"][0];
    assert_eq!(m["name"], "mpatha");
    assert_eq!(m["uuid"], WWID);
    let pgs = m["path_groups"].as_array().unwrap();
    assert_eq!(pgs.len(), 2);
    assert_eq!(pgs[0]["pri"], 50);
    assert_eq!(pgs[0]["paths"][0]["dev"], "sdb");
    assert_eq!(pgs[1]["pri"], 10);
    assert_eq!(pgs[1]["paths"][0]["dev"], "sda");

    assert_eq!(h.cmd(Command::ShowDaemon), format!("pid {} idle\n", std::process::id()));
    assert_eq!(
        h.cmd(Command::ShowStatus),
        "path checker states:\nup                  2\n\npaths: 2\nbusy: False\n"
    );
}

#[test]
fn fail_and_reinstate_path_commands_send_dm_messages() {
    let f = FakeSys::new();
    two_paths(&f, "sda", "sdb");
    let mut h = Harness::new(&f, GREEDY, DmState::default());
    h.owner.coldplug();
    h.calls();
    assert_eq!(h.cmd(Command::FailPath { path: "sdb".into() }), "");
    assert_eq!(h.changes(), vec![msg("mpatha", "fail_path 8:16")]);
    assert_eq!(h.path_rows()["sdb"][4], "failed");
    assert_eq!(h.cmd(Command::ReinstatePath { path: "8:16".into() }), "");
    assert_eq!(h.changes(), vec![msg("mpatha", "reinstate_path 8:16")]);
    assert_eq!(h.path_rows()["sdb"][4], "active");
    assert_eq!(
        h.owner.on_command(Command::FailPath { path: "sdz".into() }),
        Err(HandlerError::DeviceNotFound)
    );
    assert_eq!(
        h.owner.on_command(Command::ReinstatePath {
            path: "/dev/sdz".into()
        }),
        Err(HandlerError::DeviceNotFound)
    );
    assert_eq!(h.changes(), vec![]);
}

const PLAIN: MapUdev = MapUdev {
    skip_kpartx: false,
    no_usable_paths: false,
    rescan: false,
};

/// What the udev rules hear of a map (upstream's `build_udev_flags`): skip_kpartx as
/// selected, no usable path, and a rescan only for the `reload` and `resize` commands.
#[test]
fn map_operations_tell_udev_what_upstream_tells_it() {
    let f = FakeSys::new();
    two_paths(&f, "sda", "sdb");
    let mut h = Harness::new(&f, GREEDY, DmState::default());
    h.owner.coldplug();
    assert_eq!(h.udev(), vec![("create", "mpatha".into(), PLAIN)]);
    let ids = h.scheduled();
    // a reload of the daemon's own (the path left the map: regrouped) keeps the reload flag
    h.check(ids["sdb"], PathState::Down);
    h.owner.on_command(Command::DelPath { path: "sdb".into() }).unwrap();
    assert_eq!(h.udev(), vec![("reload", "mpatha".into(), PLAIN)]);
    // `reload map` (and `resize map` to a new size): udev rescans, even with the table unchanged
    h.cmd(Command::Reload { map: "mpatha".into() });
    let rescan = MapUdev { rescan: true, ..PLAIN };
    assert_eq!(h.udev(), vec![("reload", "mpatha".into(), rescan)]);
    // `resize map` of a map still the size of its paths loads nothing (upstream's cli_resize)
    h.cmd(Command::Resize { map: "mpatha".into() });
    assert_eq!(h.udev(), vec![]);
    // only once: the next reload (here `reset map`'s) is the daemon's own again
    h.cmd(Command::ResetMap { map: "mpatha".into() });
    assert_eq!(h.udev(), vec![("reload", "mpatha".into(), PLAIN)]);
    h.cmd(Command::Resume { map: "mpatha".into() });
    assert_eq!(h.udev(), vec![("resume", "mpatha".into(), PLAIN)]);
}

#[test]
fn skip_kpartx_and_a_map_without_usable_paths_are_told_to_udev() {
    let f = FakeSys::new();
    two_paths(&f, "sda", "sdb");
    for dev in ["sda", "sdb"] {
        fs::write(f.sys("block").join(dev).join("device/state"), "offline\n").unwrap();
    }
    let conf = "defaults {\n user_friendly_names yes\n find_multipaths greedy\n skip_kpartx yes\n}\n";
    let mut h = Harness::new(&f, conf, DmState::default());
    h.owner.coldplug();
    let hints = MapUdev {
        skip_kpartx: true,
        no_usable_paths: true,
        rescan: false,
    };
    assert_eq!(h.udev(), vec![("create", "mpatha".into(), hints)]);
    h.cmd(Command::Resume { map: "mpatha".into() });
    assert_eq!(
        h.udev(),
        vec![(
            "resume",
            "mpatha".into(),
            MapUdev {
                skip_kpartx: true,
                ..PLAIN
            }
        )]
    );
}

const MARGINAL: &str = "defaults {\n user_friendly_names yes\n find_multipaths greedy\n marginal_path_double_failed_time 60\n marginal_path_err_sample_time 120\n marginal_path_err_rate_threshold 10\n marginal_path_err_recheck_gap_time 300\n}\n";

/// Paths named so that no real machine has them: the io-err-stat test opens
/// `/dev/<name>` itself (not under `Env::dev_dir`).
const A: &str = "sdzya";
const B: &str = "sdzyb";

/// A 2-path map with the marginal settings on, both paths checked up.
fn marginal_setup() -> (FakeSys, Harness, BTreeMap<String, u64>) {
    let f = FakeSys::new();
    assert!(!Path::new("/dev").join(B).exists());
    two_paths(&f, A, B);
    let mut h = Harness::new(&f, MARGINAL, DmState::default());
    h.owner.coldplug();
    let ids = h.scheduled();
    h.check(ids[A], PathState::Up);
    h.check(ids[B], PathState::Up);
    h.calls();
    h.controls();
    (f, h, ids)
}

/// The kernel fails `devt` of mpatha (its status shows it failed), without a uevent yet.
fn dm_fails(h: &Harness, devt: &str) {
    h.dm.lock()
        .unwrap()
        .maps
        .get_mut("mpatha")
        .unwrap()
        .failed
        .insert(devt.into());
}

/// The kernel fails `devt` of mpatha and sends the uevent.
fn kernel_fails(h: &mut Harness, devt: &str, seq: u64) {
    dm_fails(h, devt);
    h.owner.on_uevent(path_failed("mpatha", devt, seq));
}

/// Two failures of B in the window, then the checker sees B up: B is held and
/// under test (the io-err-stat thread has been asked to start).
fn hold_b(h: &mut Harness, ids: &BTreeMap<String, u64>) {
    kernel_fails(h, "8:16", 1);
    h.check(ids[B], PathState::Up);
    kernel_fails(h, "8:16", 2);
    h.check(ids[B], PathState::Up);
    assert_eq!(
        h.changes(),
        vec![msg("mpatha", "reinstate_path 8:16"), msg("mpatha", "fail_path 8:16")]
    );
    assert_eq!(h.path_rows()[B][4..6], ["failed", "delayed"]);
    h.controls();
}

/// The checker (or the 1 s sysfs look) may fail a path before the kernel's
/// PATH_FAILED uevent arrives. The last-path guard counts the map's other usable
/// paths, so the second failure in the window holds the path back in this order too
/// (it counted the failing path as already gone and held only at the third).
#[test]
fn the_second_failure_holds_the_path_when_the_checker_saw_it_first() {
    let (_f, mut h, ids) = marginal_setup();
    h.check(ids[B], PathState::Down);
    kernel_fails(&mut h, "8:16", 1);
    h.check(ids[B], PathState::Up);
    assert_eq!(
        h.changes(),
        vec![msg("mpatha", "fail_path 8:16"), msg("mpatha", "reinstate_path 8:16")]
    );
    h.check(ids[B], PathState::Down);
    kernel_fails(&mut h, "8:16", 2);
    h.check(ids[B], PathState::Up);
    // The checker failed it already: the hold adds no second fail_path.
    assert_eq!(h.changes(), vec![msg("mpatha", "fail_path 8:16")]);
    assert_eq!(h.path_rows()[B][4..6], ["failed", "delayed"]);
}

/// The dm event thread names a map whose event counter moved: a path the kernel failed
/// while its checker had it up is shown failed and checked at once, before any
/// PATH_FAILED uevent; nothing else is sent to the kernel, and no failure is counted
/// (the uevent, when it comes, does the marginal accounting as before).
#[test]
fn a_dm_event_has_a_path_the_kernel_failed_checked_at_once() {
    let (_f, mut h, ids) = marginal_setup();
    dm_fails(&h, "8:16");
    h.owner.on_dm_events(&["mpatha".to_string(), "vg0-lv0".to_string()]);
    assert_eq!(h.path_rows()[B][4..6], ["failed", "ready"]);
    assert_eq!(h.path_rows()[A][4..6], ["active", "ready"]);
    let ctl = h.controls();
    let at_once: Vec<u64> = ctl
        .iter()
        .filter_map(|c| match c {
            Control::Schedule { req, in_secs: 0 } => Some(req.path),
            _ => None,
        })
        .collect();
    assert_eq!(at_once, [ids[B]], "{ctl:?}");
    assert_eq!(h.changes(), []);
    // The same event seen again: the path is failed already, it is not checked once
    // more. The check's verdict down fails it as any (upstream sends its fail_path
    // whatever DM's state); the event of that message checks nothing.
    h.owner.on_dm_events(&["mpatha".to_string()]);
    assert!(h.controls().is_empty());
    h.check(ids[B], PathState::Down);
    assert_eq!(h.changes(), vec![msg("mpatha", "fail_path 8:16")]);
    h.controls();
    h.owner.on_dm_events(&["mpatha".to_string()]);
    assert!(h.controls().is_empty());
    h.owner.shutdown();
}

fn finished(path: &str, ios: u64, errs: u64) -> IoErrEvent {
    IoErrEvent::Finished {
        path: path.into(),
        counts: Counts {
            ios,
            errs,
            failed: errs,
            ..Default::default()
        },
    }
}

#[test]
fn a_bad_io_error_verdict_keeps_the_path_out() {
    let (_f, mut h, ids) = marginal_setup();
    hold_b(&mut h, &ids);
    // 100 errors in 1000 reads: 100/1000 is over the threshold of 10/1000.
    h.owner.on_ioerr(finished(B, 1000, 100));
    assert_eq!(h.changes(), vec![]);
    h.check(ids[B], PathState::Up);
    assert_eq!(h.changes(), vec![], "still inside marginal_path_err_recheck_gap_time");
    assert_eq!(h.path_rows()[B][4..6], ["failed", "delayed"]);
    // The thread's own report (it could not open the device) comes after the
    // verdict and is stale by then.
    let ev = h
        .ioerr
        .recv_timeout(Duration::from_secs(30))
        .expect("io-err-stat reports");
    assert!(
        matches!(&ev, IoErrEvent::EnqueueFailed { path, .. } if path == B),
        "{ev:?}"
    );
    h.owner.on_ioerr(ev);
    h.check(ids[B], PathState::Up);
    assert_eq!(h.changes(), vec![]);
    assert_eq!(h.path_rows()[B][4..6], ["failed", "delayed"]);
    h.owner.shutdown();
}

/// An io-err-stat thread that only records the commands it gets, in order.
fn recording_thread() -> (Spawner, Receiver<Cmd>) {
    let (tx, rx) = unbounded();
    let spawn: Spawner = Box::new(move |cmds: Receiver<Cmd>, _events| {
        let tx = tx.clone();
        std::thread::Builder::new()
            .name("fake_io_err_stat".into())
            .spawn(move || {
                for c in cmds {
                    let last = c == Cmd::Shutdown;
                    let _ = tx.send(c);
                    if last {
                        break;
                    }
                }
            })
    });
    (spawn, rx)
}

/// [`marginal_setup`] with the io-err-stat thread started by `spawn`.
fn marginal_setup_with(spawn: Spawner) -> (FakeSys, Harness, BTreeMap<String, u64>) {
    let f = FakeSys::new();
    two_paths(&f, A, B);
    let mut h = Harness::with_ioerr(&f, MARGINAL, DmState::default(), Some(spawn));
    h.owner.coldplug();
    let ids = h.scheduled();
    h.check(ids[A], PathState::Up);
    h.check(ids[B], PathState::Up);
    h.calls();
    h.controls();
    (f, h, ids)
}

/// The commands the recording thread got, as (kind, path) pairs: `n` of them (it forwards
/// asynchronously, so each is waited for; a fixed pause lost them on a loaded machine)
/// and whatever else has arrived by then.
fn cmds(rx: &Receiver<Cmd>, n: usize) -> Vec<(&'static str, String)> {
    let got = (0..n).map_while(|_| rx.recv_timeout(Duration::from_secs(10)).ok());
    let got: Vec<Cmd> = got.collect();
    got.into_iter()
        .chain(rx.try_iter())
        .map(|c| match c {
            Cmd::Start(spec) => ("start", spec.path),
            Cmd::Cancel(p) => ("cancel", p),
            Cmd::Shutdown => ("shutdown", String::new()),
        })
        .collect()
}

/// The `show marginal` line of `dev`, in words.
fn marginal_row(h: &mut Harness, dev: &str) -> Vec<String> {
    h.cmd(Command::ShowMarginal)
        .lines()
        .find(|l| l.split_whitespace().next() == Some(dev))
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default()
}

/// As upstream: a test that runs through a reconfigure is judged by the threshold it
/// started with (100/1000 > 10 keeps the path out, though the new threshold is 500);
/// the new recheck gap applies to the verdict's wait.
#[test]
fn a_reconfigure_during_a_test_keeps_the_threshold_the_test_started_with() {
    let (spawn, rx) = recording_thread();
    let (_f, mut h, ids) = marginal_setup_with(spawn);
    hold_b(&mut h, &ids);
    assert_eq!(cmds(&rx, 1), [("start", B.to_string())]);
    h.owner.reconfigure(config(&MARGINAL.replace(
        "marginal_path_err_rate_threshold 10\n marginal_path_err_recheck_gap_time 300",
        "marginal_path_err_rate_threshold 500\n marginal_path_err_recheck_gap_time 30",
    )));
    h.calls();
    h.owner.on_ioerr(finished(B, 1000, 100));
    h.check(ids[B], PathState::Up);
    assert_eq!(h.changes(), vec![], "kept out by the old threshold");
    assert_eq!(h.path_rows()[B][4..6], ["failed", "delayed"]);
    assert_eq!(
        marginal_row(&mut h, B)[2..],
        ["delayed", "normal", "1000", "100", "100.0/1000", "31s"]
    );
    h.owner.shutdown();
    assert_eq!(cmds(&rx, 1), [("shutdown", String::new())]);
}

/// A reconfigure that removes the marginal_path_* settings: as upstream, the next check
/// that finds the held path up reinstates it; its test is cancelled.
#[test]
fn removing_the_marginal_settings_gives_a_held_path_back_at_its_next_check() {
    let (spawn, rx) = recording_thread();
    let (_f, mut h, ids) = marginal_setup_with(spawn);
    hold_b(&mut h, &ids);
    h.owner.reconfigure(config(GREEDY));
    h.calls();
    assert_eq!(h.path_rows()[B][4..6], ["failed", "delayed"], "until its next check");
    h.check(ids[B], PathState::Up);
    assert_eq!(h.changes(), vec![msg("mpatha", "reinstate_path 8:16")]);
    assert_eq!(h.path_rows()[B][4..6], ["active", "ready"]);
    assert_eq!(cmds(&rx, 2), [("start", B.to_string()), ("cancel", B.to_string())]);
    assert_eq!(marginal_row(&mut h, B)[2..4], ["normal", "normal"]);
    h.owner.shutdown();
}

/// A path removed during its test: the test is cancelled and the path forgotten.
#[test]
fn a_path_removed_during_its_test_cancels_the_test() {
    let (spawn, rx) = recording_thread();
    let (f, mut h, ids) = marginal_setup_with(spawn);
    hold_b(&mut h, &ids);
    f.remove(B, (8, 16));
    h.owner.on_uevent(remove_uevent(B, 0));
    assert_eq!(cmds(&rx, 2), [("start", B.to_string()), ("cancel", B.to_string())]);
    assert_eq!(marginal_row(&mut h, B), Vec::<String>::new());
    // A verdict the thread sent before it saw the cancel changes nothing.
    h.calls();
    h.owner.on_ioerr(finished(B, 1000, 0));
    assert_eq!(h.changes(), vec![]);
    h.owner.shutdown();
}

/// A map removed during a test: its paths are orphans, their holds end and the test
/// is cancelled, as upstream's verdict on an orphan path.
#[test]
fn a_map_removed_during_a_test_releases_its_paths() {
    let (spawn, rx) = recording_thread();
    let (_f, mut h, ids) = marginal_setup_with(spawn);
    hold_b(&mut h, &ids);
    assert_eq!(h.cmd(Command::DelMap { map: "mpatha".into() }), "");
    assert_eq!(cmds(&rx, 2), [("start", B.to_string()), ("cancel", B.to_string())]);
    assert_eq!(marginal_row(&mut h, B)[2..4], ["normal", "normal"]);
    let ctl = h.controls();
    assert!(
        ctl.iter()
            .any(|c| matches!(c, Control::Schedule { req, in_secs: 0 } if req.path == ids[B])),
        "released path is checked at once: {ctl:?}"
    );
    h.owner.shutdown();
}

/// The io-err-stat thread dies (here: its engine panics on the first read): the owner
/// hears of it, gives back every held path (the checker reinstates it once it finds
/// it up), and the next test starts a new thread.
#[test]
fn a_dead_io_err_stat_thread_releases_every_hold() {
    let spawn: Spawner = Box::new(|cmds, events| {
        let mut eng = FakeEngine::new(std::time::Instant::now());
        eng.add_device(
            &format!("/dev/{B}"),
            512,
            Box::new(|_| -> FakeRead { panic!("engine failure (on purpose)") }),
        );
        spawn_io_err_stat_with(eng, cmds, events)
    });
    let (_f, mut h, ids) = marginal_setup_with(spawn);
    hold_b(&mut h, &ids);
    let ev = h
        .ioerr
        .recv_timeout(Duration::from_secs(30))
        .expect("io-err-stat reports");
    assert_eq!(ev, IoErrEvent::Exited);
    h.owner.on_ioerr(ev);
    let ctl = h.controls();
    assert!(
        ctl.iter()
            .any(|c| matches!(c, Control::Schedule { req, in_secs: 0 } if req.path == ids[B])),
        "released path is checked at once: {ctl:?}"
    );
    assert_eq!(marginal_row(&mut h, B)[2..4], ["normal", "normal"]);
    h.check(ids[B], PathState::Up);
    assert_eq!(h.changes(), vec![msg("mpatha", "reinstate_path 8:16")]);
    assert_eq!(h.path_rows()[B][4..6], ["active", "ready"]);
    // Held again later: a new thread takes the test (and dies the same way).
    h.check(ids[B], PathState::Down);
    kernel_fails(&mut h, "8:16", 3);
    h.check(ids[B], PathState::Up);
    kernel_fails(&mut h, "8:16", 4);
    h.check(ids[B], PathState::Up);
    assert_eq!(
        h.ioerr
            .recv_timeout(Duration::from_secs(30))
            .expect("io-err-stat reports"),
        IoErrEvent::Exited
    );
    h.owner.shutdown();
}

/// `show marginal json` for exporters: the held path's accounting, live counts while
/// its test runs; `show maps json` keeps upstream's keys only.
#[test]
fn show_marginal_json_has_the_per_path_accounting() {
    let (spawn, _rx) = recording_thread();
    let (_f, mut h, ids) = marginal_setup_with(spawn);
    assert_eq!(
        h.cmd(Command::ShowMarginalJson),
        "{\n   \"major_version\": 0,\n   \"minor_version\": 1,\n   \"paths\": []\n}\n"
    );
    hold_b(&mut h, &ids);
    h.owner.on_ioerr(IoErrEvent::Progress {
        path: B.into(),
        counts: Counts {
            ios: 640,
            errs: 64,
            blocked: 64,
            ..Default::default()
        },
    });
    let j: serde_json::Value = serde_json::from_str(&h.cmd(Command::ShowMarginalJson)).expect("valid JSON");
    assert_eq!(
        j["paths"],
        serde_json::json!([{
            "dev": B,
            "map": "mpatha",
            "io_err_st": "testing",
            "marginal_st": "normal",
            "io_err_ios": 640,
            "io_err_errs": 64,
            "io_err_rate": 100.0,
            "io_err_recheck_in": null
        }])
    );
    let maps = h.cmd(Command::ShowMapsJson);
    assert!(!maps.contains("io_err"), "{maps}");
    h.owner.shutdown();
}

/// `%M` and JSON `marginal_st` as upstream prints them: with marginal_pathgroups off
/// a held path is kept out of the map (`delayed`); its marginal flag stays off.
#[test]
fn a_held_path_is_not_marginal_with_marginal_pathgroups_off() {
    let (_f, mut h, ids) = marginal_setup();
    hold_b(&mut h, &ids);
    assert_eq!(
        h.cmd(Command::ShowPathsFormat {
            fmt: "%d %T %M".into(),
            raw: true
        }),
        format!("{B} delayed normal\n{A} ready normal\n")
    );
    let json: serde_json::Value = serde_json::from_str(&h.cmd(Command::ShowMapsJson)).expect("valid JSON");
    let sts: Vec<&str> = json["maps"][0]["path_groups"]
        .as_array()
        .expect("groups")
        .iter()
        .flat_map(|g| g["paths"].as_array().expect("paths"))
        .map(|p| p["marginal_st"].as_str().expect("marginal_st"))
        .collect();
    assert_eq!(sts, ["normal", "normal"]);
    h.owner.shutdown();
}

#[test]
fn a_good_io_error_verdict_lets_the_path_back() {
    let (_f, mut h, ids) = marginal_setup();
    hold_b(&mut h, &ids);
    h.owner.on_ioerr(finished(B, 1000, 10));
    let ctl = h.controls();
    assert!(
        ctl.iter()
            .any(|c| matches!(c, Control::Schedule { req, in_secs: 0 } if req.path == ids[B])),
        "released path is checked at once: {ctl:?}"
    );
    h.check(ids[B], PathState::Up);
    assert_eq!(h.changes(), vec![msg("mpatha", "reinstate_path 8:16")]);
    assert_eq!(h.path_rows()[B][4..6], ["active", "ready"]);
    h.owner.shutdown();
}

#[test]
fn the_last_active_path_is_never_held() {
    let (_f, mut h, ids) = marginal_setup();
    assert_eq!(h.cmd(Command::FailPath { path: A.into() }), "");
    h.calls();
    kernel_fails(&mut h, "8:16", 1);
    h.check(ids[B], PathState::Up);
    kernel_fails(&mut h, "8:16", 2);
    assert_eq!(
        h.changes(),
        vec![msg("mpatha", "reinstate_path 8:16")],
        "no fail_path from the daemon"
    );
    h.check(ids[B], PathState::Up);
    assert_eq!(h.changes(), vec![msg("mpatha", "reinstate_path 8:16")]);
    assert_eq!(h.path_rows()[B][4..6], ["active", "ready"]);
    assert!(h.ioerr.try_recv().is_err(), "no IO error test was started");
}

#[test]
fn second_path_failed_uevent_in_the_window_holds_the_path() {
    let (_f, mut h, ids) = marginal_setup();
    let (a, b) = (A, B);

    // The kernel failed the path and says so; the first uevent only starts pre-checking.
    dm_fails(&h, "8:16");
    h.owner.on_uevent(path_failed("mpatha", "8:16", 1));
    assert_eq!(h.changes(), vec![]);
    assert_eq!(h.path_rows()[b][4], "failed");
    // Not held after one failure: the next good check reinstates it.
    h.check(ids[b], PathState::Up);
    assert_eq!(h.changes(), vec![msg("mpatha", "reinstate_path 8:16")]);
    assert_eq!(h.path_rows()[b][4..6], ["active", "ready"]);
    // And it fails again within marginal_path_double_failed_time.
    dm_fails(&h, "8:16");
    h.owner.on_uevent(path_failed("mpatha", "8:16", 2));
    assert_eq!(h.changes(), vec![msg("mpatha", "fail_path 8:16")]);
    let rows = h.path_rows();
    assert_eq!(rows[b][4..6], ["failed", "faulty"]);
    assert_eq!(rows[a][4..6], ["active", "ready"]);

    // The checker sees it up: held back (delayed), and an IO error test is asked for.
    // This machine has no such device, so the test cannot start: the path is released.
    h.check(ids[b], PathState::Up);
    assert_eq!(h.changes(), vec![], "a held path is not reinstated");
    assert_eq!(h.path_rows()[b][5], "delayed");
    let ev = h
        .ioerr
        .recv_timeout(Duration::from_secs(30))
        .expect("io-err-stat reports");
    assert!(
        matches!(&ev, IoErrEvent::EnqueueFailed { path, .. } if path == b),
        "{ev:?}"
    );
    h.owner.on_ioerr(ev);
    let again: Vec<Control> = h.controls();
    assert!(
        again
            .iter()
            .any(|c| matches!(c, Control::Schedule { req, in_secs: 0 } if req.path == ids[b])),
        "released path is checked at once: {again:?}"
    );
    // The next good check reinstates it.
    h.check(ids[b], PathState::Up);
    assert_eq!(h.changes(), vec![msg("mpatha", "reinstate_path 8:16")]);
    assert_eq!(h.path_rows()[b][4..6], ["active", "ready"]);
    h.owner.shutdown();
}

/// As upstream's default `flush_on_last_del unused`: a map that queues IO and is in use
/// (mounted) is kept when its last path goes, and gets the path back by a reload.
#[test]
fn removing_paths_reloads_and_keeps_a_queueing_map_in_use() {
    let f = FakeSys::new();
    two_paths(&f, "sda", "sdb");
    let conf = "defaults {\n user_friendly_names yes\n find_multipaths greedy\n no_path_retry queue\n}\n";
    let mut h = Harness::new(&f, conf, DmState::default());
    h.owner.coldplug();
    let ids = h.scheduled();
    h.calls();
    h.dm.lock().unwrap().open.insert("mpatha".into());

    f.remove("sdb", (8, 16));
    h.owner.on_uevent(remove_uevent("sdb", 0));
    assert_eq!(
        h.changes(),
        vec![Call::Reload {
            name: "mpatha".into(),
            sectors: SECTORS,
            params: "1 queue_if_no_path 1 alua 1 1 service-time 0 1 1 8:0 1".into()
        }]
    );
    let ctl = h.controls();
    assert!(ctl.contains(&Control::Remove(ids["sdb"])), "{ctl:?}");
    assert_eq!(h.owner.counts(), (1, 1));

    f.remove("sda", (8, 0));
    h.owner.on_uevent(remove_uevent("sda", 1));
    assert_eq!(h.changes(), vec![], "the last path leaves the map as it is");
    assert!(h.controls().contains(&Control::Remove(ids["sda"])));
    assert_eq!(h.owner.counts(), (0, 1));
    assert!(h.dm.lock().unwrap().maps.contains_key("mpatha"));
    let topo = h.cmd(Command::ShowMapsTopology);
    // With no path left there is no vendor to show: upstream prints `##,##` then.
    assert!(
        topo.lines()
            .next()
            .unwrap()
            .ends_with(&format!("mpatha ({WWID}) dm-0 ##,##")),
        "{topo}"
    );
    assert!(!topo.contains("sda") && !topo.contains("sdb"), "{topo}");

    // The disk comes back: the kept map gets it again by a reload, not a new map.
    f.add(&Disk {
        dev: "sda",
        devt: (8, 0),
        host: 1,
        lun: 0,
        wwid: WWID,
        access_state: "active/non-optimized",
    });
    h.owner.on_uevent(uevent(&[
        ("ACTION", "add"),
        (
            "DEVPATH",
            "/devices/pseudo_0/adapter1/host1/target1:0:0/1:0:0:0/block/sda",
        ),
        ("SUBSYSTEM", "block"),
        ("DEVNAME", "/dev/sda"),
    ]));
    assert_eq!(
        h.changes(),
        vec![Call::Reload {
            name: "mpatha".into(),
            sectors: SECTORS,
            params: "1 queue_if_no_path 1 alua 1 1 service-time 0 1 1 8:0 1".into()
        }]
    );
    assert_eq!(h.owner.counts(), (1, 1));
}

/// Upstream's flush_map_nopaths: a map that does not queue, or that queues and is not in
/// use (`flush_on_last_del unused`, the default, or `always`), is removed with its last
/// path, queueing turned off first; `never` keeps a queueing map.
#[test]
fn the_last_path_removed_flushes_its_map_as_upstream() {
    let run = |conf: &str, open: bool| {
        let f = FakeSys::new();
        two_paths(&f, "sda", "sdb");
        let mut h = Harness::new(&f, conf, DmState::default());
        h.owner.coldplug();
        if open {
            h.dm.lock().unwrap().open.insert("mpatha".into());
        }
        f.remove("sdb", (8, 16));
        h.owner.on_uevent(remove_uevent("sdb", 0));
        f.remove("sda", (8, 0));
        h.calls();
        h.owner.on_uevent(remove_uevent("sda", 1));
        let calls = h.changes();
        (calls, h.owner.counts())
    };
    let remove = Call::Remove { name: "mpatha".into() };
    // Not queueing (no_path_retry fail by default): removed whatever flush_on_last_del says
    // (upstream turns queueing off all the same).
    let (calls, counts) = run(GREEDY, false);
    assert_eq!(
        (calls, counts),
        (vec![msg("mpatha", "fail_if_no_path"), remove.clone()], (0, 0))
    );
    let queue = |extra: &str| {
        format!("defaults {{\n user_friendly_names yes\n find_multipaths greedy\n no_path_retry queue\n{extra}}}\n")
    };
    // Queueing and unused: queueing off, then removed.
    let (calls, counts) = run(&queue(""), false);
    assert_eq!(
        (calls, counts),
        (vec![msg("mpatha", "fail_if_no_path"), remove.clone()], (0, 0))
    );
    // Queueing, in use, unused: kept, still queueing.
    let (calls, counts) = run(&queue(""), true);
    assert_eq!((calls, counts), (vec![], (0, 1)));
    // always: queueing off even in use; the map is in use, so not removed, and stays.
    let (calls, counts) = run(&queue(" flush_on_last_del always\n"), true);
    assert_eq!((calls, counts), (vec![msg("mpatha", "fail_if_no_path")], (0, 1)));
    // never: a queueing map is kept.
    let (calls, counts) = run(&queue(" flush_on_last_del never\n"), false);
    assert_eq!((calls, counts), (vec![], (0, 1)));
}

/// `deferred_remove yes`, as upstream: the last path of a map in use goes, and the map
/// is removed with DM_DEFERRED_REMOVE (the kernel removes it at its last close) and kept
/// meanwhile; a path that comes back cancels the removal and joins the map. Unused, the
/// map goes at once.
#[test]
fn deferred_remove_leaves_an_open_map_to_the_kernel_until_a_path_comes_back() {
    let conf = GREEDY.replace("}\n", " deferred_remove yes\n}\n");
    let f = FakeSys::new();
    two_paths(&f, "sda", "sdb");
    let mut h = Harness::new(&f, &conf, DmState::default());
    h.owner.coldplug();
    h.dm.lock().unwrap().open.insert("mpatha".into());
    f.remove("sdb", (8, 16));
    h.owner.on_uevent(remove_uevent("sdb", 0));
    f.remove("sda", (8, 0));
    h.calls();
    h.owner.on_uevent(remove_uevent("sda", 1));
    assert_eq!(
        h.changes(),
        vec![
            msg("mpatha", "fail_if_no_path"),
            Call::RemoveDeferred { name: "mpatha".into() }
        ]
    );
    assert_eq!(h.owner.counts(), (0, 1), "kept until the kernel removes it");

    f.add(&Disk {
        dev: "sda",
        devt: (8, 0),
        host: 1,
        lun: 0,
        wwid: WWID,
        access_state: "active/non-optimized",
    });
    h.owner.on_uevent(scsi_uevent("add", "sda", 1));
    let changes = h.changes();
    assert_eq!(
        changes.first(),
        Some(&msg("mpatha", "@cancel_deferred_remove")),
        "{changes:?}"
    );
    assert!(
        matches!(&changes[1..], [Call::Reload { params, .. }] if params.ends_with("8:0 1")),
        "{changes:?}"
    );
    assert_eq!(h.owner.counts(), (1, 1));

    // Unused, the map goes at once, as without the setting.
    let f = FakeSys::new();
    two_paths(&f, "sda", "sdb");
    let mut h = Harness::new(&f, &conf, DmState::default());
    h.owner.coldplug();
    for (dev, devt, host) in [("sdb", (8, 16), 0), ("sda", (8, 0), 1)] {
        f.remove(dev, devt);
        h.owner.on_uevent(remove_uevent(dev, host));
    }
    assert_eq!(h.owner.counts(), (0, 0));
}

/// A new map is live when its create returns, but udev's rules for it run after that;
/// the daemon's port waits for them on another thread. Until udev is done the map counts
/// as loading: a reload planned meanwhile waits for the end (so that udev sees the
/// create's event before the reload's), and removal is refused. The end of a wait with
/// nothing after it loads nothing and checks no path early: the table did not change.
#[test]
fn a_new_map_waits_for_udev_off_the_owner_and_its_next_reload_follows() {
    let f = FakeSys::new();
    two_paths(&f, "sda", "sdb");
    let dm = DmState {
        udev_waits: true,
        ..DmState::default()
    };
    let mut h = Harness::new(&f, GREEDY, dm);
    h.owner.coldplug();
    let ids = h.scheduled();
    assert!(
        matches!(&h.changes()[..], [Call::Create { name, params, .. }] if name == "mpatha" && params == TWO_PATH_TABLE),
        "created once"
    );
    let mpatha = ["mpatha".to_string()];
    assert!(h.owner.any_loading(&mpatha), "udev's wait is in flight");
    h.controls();

    // The owner still acts on checks meanwhile: the table is live.
    h.check(ids["sda"], PathState::Down);
    assert_eq!(h.changes(), vec![msg("mpatha", "fail_path 8:0")]);
    assert_eq!(
        h.owner.on_command(Command::DelMap { map: "mpatha".into() }),
        Err(HandlerError::Busy)
    );

    // sdb goes: its reload waits for udev.
    f.remove("sdb", (8, 16));
    h.owner.on_uevent(remove_uevent("sdb", 0));
    assert_eq!(h.changes(), vec![], "no reload before udev handled the create");
    h.controls();

    let udev_done = |map: &str| LoadDone {
        map: map.into(),
        kind: LoadKind::CreateUdev,
        result: Ok(()),
        took: Duration::from_millis(900),
    };
    h.owner.on_load_done(udev_done("mpatha"));
    assert_eq!(
        h.changes(),
        vec![Call::Reload {
            name: "mpatha".into(),
            sectors: SECTORS,
            params: "0 1 alua 1 1 service-time 0 1 1 8:0 1".into()
        }],
        "the reload follows udev's wait"
    );
    assert!(!h.owner.any_loading(&mpatha));

    // A second LUN: its wait ends with nothing after it.
    f.add(&Disk {
        dev: "sdc",
        devt: (8, 32),
        host: 0,
        lun: 1,
        wwid: "333333330000007d1",
        access_state: "active/optimized",
    });
    h.owner.on_uevent(uevent(&[
        ("ACTION", "add"),
        (
            "DEVPATH",
            "/devices/pseudo_0/adapter0/host0/target0:0:0/0:0:0:1/block/sdc",
        ),
        ("SUBSYSTEM", "block"),
        ("DEVNAME", "/dev/sdc"),
    ]));
    assert!(matches!(&h.changes()[..], [Call::Create { name, .. }] if name == "mpathb"));
    assert!(h.owner.any_loading(&["mpathb".to_string()]));
    h.controls();
    h.calls();
    h.owner.on_load_done(udev_done("mpathb"));
    assert!(!h.owner.any_loading(&["mpathb".to_string()]));
    assert_eq!(h.calls(), vec![], "nothing loaded");
    assert_eq!(
        h.controls()
            .into_iter()
            .filter(|c| matches!(c, Control::Schedule { in_secs: 0, .. }))
            .count(),
        0,
        "no path checked early"
    );
    assert_eq!(
        h.owner.on_command(Command::DelMap { map: "mpathb".into() }),
        Ok(String::new())
    );
}

/// [`two_paths`] coldplugged, reloads then held in flight, and sdb removed: the reload
/// taking it out of mpatha is held.
fn sdb_gone_under_held_loads(f: &FakeSys) -> Harness {
    two_paths(f, "sda", "sdb");
    let mut h = Harness::new(f, GREEDY, DmState::default());
    h.owner.coldplug();
    h.dm.lock().unwrap().hold_loads = true;
    f.remove("sdb", (8, 16));
    h.owner.on_uevent(remove_uevent("sdb", 0));
    h
}

/// sdb (8:16, host 0) of [`two_paths`] appears again, announced by its add uevent.
fn sdb_back(f: &FakeSys, h: &mut Harness) {
    f.add(&Disk {
        dev: "sdb",
        devt: (8, 16),
        host: 0,
        lun: 0,
        wwid: WWID,
        access_state: "active/optimized",
    });
    h.owner.on_uevent(scsi_uevent("add", "sdb", 0));
}

/// A reload whose suspend waits for IO in flight (a hung path) runs off the owner's
/// thread: the owner goes on; a further reload waits for it and then loads the newest
/// table; remove/suspend/resume are refused meanwhile (they would wait in the kernel);
/// at the end the map's paths are checked at once (the new table made them all active).
#[test]
fn a_reload_waiting_for_io_holds_up_neither_the_owner_nor_the_next_reload() {
    let f = FakeSys::new();
    two_paths(&f, "sda", "sdb");
    let mut h = Harness::new(&f, GREEDY, DmState::default());
    h.owner.coldplug();
    let ids = h.scheduled();
    h.calls();
    h.controls();
    h.dm.lock().unwrap().hold_loads = true;

    f.remove("sdb", (8, 16));
    h.owner.on_uevent(remove_uevent("sdb", 0));
    let one_path = "0 1 alua 1 1 service-time 0 1 1 8:0 1";
    assert_eq!(
        h.changes(),
        vec![Call::Reload {
            name: "mpatha".into(),
            sectors: SECTORS,
            params: one_path.into()
        }]
    );
    assert!(h.owner.take_started_loads().is_empty(), "no command started it");

    // The owner still acts on checks while the load is in flight.
    h.check(ids["sda"], PathState::Down);
    assert_eq!(h.changes(), vec![msg("mpatha", "fail_path 8:0")]);
    for c in [
        Command::DelMap { map: "mpatha".into() },
        Command::Suspend { map: "mpatha".into() },
        Command::Resume { map: "mpatha".into() },
    ] {
        assert_eq!(h.owner.on_command(c), Err(HandlerError::Busy));
    }
    assert_eq!(h.changes(), vec![], "nothing that would wait behind the suspend");

    // sdb comes back: its reload waits for the one in flight.
    sdb_back(&f, &mut h);
    assert_eq!(h.changes(), vec![], "no second load while one is in flight");
    let sdb = h.scheduled()["sdb"];

    h.end_load("mpatha");
    let both = h.changes();
    assert!(
        matches!(&both[..], [Call::Reload { name, params, .. }] if name == "mpatha" && params.contains("8:0") && params.contains("8:16")),
        "the newest table follows: {both:?}"
    );
    assert!(h.owner.any_loading(&["mpatha".to_string()]));
    h.controls();

    h.end_load("mpatha");
    assert!(!h.owner.any_loading(&["mpatha".to_string()]));
    let checked: BTreeSet<u64> = h
        .controls()
        .into_iter()
        .filter_map(|c| match c {
            Control::Schedule { req, in_secs: 0 } => Some(req.path),
            _ => None,
        })
        .collect();
    assert_eq!(
        checked,
        BTreeSet::from([ids["sda"], sdb]),
        "every path of the new table is checked at once"
    );
    assert_eq!(
        h.owner.on_command(Command::Suspend { map: "mpatha".into() }),
        Ok(String::new())
    );
    assert!(h.owner.take_started_loads().is_empty());
    // A command's reload is the command's: its reply waits for it.
    h.cmd(Command::Reload { map: "mpatha".into() });
    assert_eq!(h.owner.take_started_loads(), vec!["mpatha".to_string()]);
    assert!(h.owner.any_loading(&["mpatha".to_string()]));
}

/// A path that comes back while the reload putting it back into its map is in flight
/// (its suspend waiting for IO): its first check sends the kernel no `reinstate_path`
/// for it, which the live table without it would refuse (EINVAL, as in the lab's
/// uevent storm); the load's end checks it at once, and that check decides.
#[test]
fn a_path_checked_before_the_reload_adding_it_ends_gets_no_message() {
    let f = FakeSys::new();
    let mut h = sdb_gone_under_held_loads(&f);
    h.end_load("mpatha");
    h.calls();
    h.controls();
    sdb_back(&f, &mut h);
    let adding = h.changes();
    assert!(
        matches!(&adding[..], [Call::Reload { params, .. }] if params.contains("8:16")),
        "the reload adding sdb: {adding:?}"
    );
    let sdb = h.scheduled()["sdb"];

    h.check(sdb, PathState::Up);
    assert_eq!(h.changes(), vec![], "no message for a path the live table lacks");
    h.end_load("mpatha");
    assert!(
        h.controls()
            .iter()
            .any(|c| matches!(c, Control::Schedule { req, in_secs: 0 } if req.path == sdb)),
        "sdb checked at once after the load"
    );
    // Its first check that counts, sent to the table that holds it (a new path's first
    // verdict up reinstates it, as without a reload in flight).
    h.check(sdb, PathState::Up);
    assert_eq!(h.changes(), vec![msg("mpatha", "reinstate_path 8:16")]);
    h.check(sdb, PathState::Down);
    assert_eq!(h.changes(), vec![msg("mpatha", "fail_path 8:16")]);
}

/// The last path leaving a map whose reload is in flight: the flush waits for the
/// load's end, then runs as upstream's flush_map_nopaths.
#[test]
fn the_last_path_leaving_during_a_reload_flushes_the_map_after_it() {
    let f = FakeSys::new();
    let mut h = sdb_gone_under_held_loads(&f);
    h.calls();
    f.remove("sda", (8, 0));
    h.owner.on_uevent(remove_uevent("sda", 1));
    assert_eq!(h.changes(), vec![], "the flush waits for the load");
    assert_eq!(h.owner.counts(), (0, 1));
    h.end_load("mpatha");
    assert_eq!(
        h.changes(),
        vec![msg("mpatha", "fail_if_no_path"), Call::Remove { name: "mpatha".into() }]
    );
    assert_eq!(h.owner.counts(), (0, 0));
}

/// A map with kpartx's partition map `mpatha-part1` on it (a table, so it holds the map).
fn with_partition(conf: &str) -> (FakeSys, Harness) {
    let f = FakeSys::new();
    two_paths(&f, "sda", "sdb");
    let mut h = Harness::new(&f, conf, DmState::default());
    h.owner.coldplug();
    h.dm.lock()
        .unwrap()
        .parts
        .insert("mpatha-part1".into(), ("mpatha".into(), true));
    h.calls();
    (f, h)
}

/// `del map` (also `remove map`, `del maps`) on a map with a partition map nobody uses:
/// as upstream's dm_flush_map, the partition map goes first, then the map, suspended
/// (flushing) before its removal; the reply is `ok`.
#[test]
fn del_map_removes_the_partition_maps_first() {
    let (_f, mut h) = with_partition(GREEDY);
    assert_eq!(h.cmd(Command::DelMap { map: "mpatha".into() }), "");
    assert_eq!(
        h.changes(),
        vec![
            Call::Remove {
                name: "mpatha-part1".into()
            },
            Call::Suspend {
                name: "mpatha".into(),
                how: Suspend::FLUSH
            },
            Call::Remove { name: "mpatha".into() },
        ]
    );
    let st = h.dm.lock().unwrap();
    assert!(st.maps.is_empty() && st.parts.is_empty());
    drop(st);
    assert_eq!(h.owner.counts(), (2, 0));
    assert_eq!(
        h.owner.on_command(Command::DelMap { map: "mpatha".into() }),
        Err(HandlerError::DeviceNotFound)
    );
}

/// A map removed behind the daemon's back: `del map` has nothing left to do, answers
/// `ok` and forgets it, as upstream's flush of a map that is not there.
#[test]
fn del_map_of_a_map_already_gone_is_ok() {
    let (_f, mut h) = with_partition(GREEDY);
    let mut st = h.dm.lock().unwrap();
    st.parts.clear();
    st.maps.clear();
    drop(st);
    assert_eq!(h.cmd(Command::DelMap { map: "mpatha".into() }), "");
    assert_eq!(h.owner.counts(), (2, 0));
}

/// A map that queues has queueing turned off before the flushing suspend (queued IO
/// would hold it for ever).
#[test]
fn del_map_of_a_queueing_map_stops_queueing_before_the_suspend() {
    let conf = "defaults {\n user_friendly_names yes\n find_multipaths greedy\n no_path_retry queue\n}\n";
    let (_f, mut h) = with_partition(conf);
    assert_eq!(h.cmd(Command::DelMap { map: "mpatha".into() }), "");
    let calls = h.changes();
    assert_eq!(calls[0], msg("mpatha", "fail_if_no_path"), "{calls:?}");
    assert_eq!(calls.len(), 4, "{calls:?}");
}

/// An open partition (mounted) or another holder of the map: nothing is removed and the
/// reply is upstream's `fail` + `map or partition in use`.
#[test]
fn del_map_refuses_a_map_in_use_or_with_a_partition_in_use() {
    for holder in ["mpatha-part1", "mpatha"] {
        let (_f, mut h) = with_partition(GREEDY);
        h.dm.lock().unwrap().open.insert(holder.into());
        let r = h.owner.on_command(Command::DelMap { map: "mpatha".into() });
        assert_eq!(r, Err(HandlerError::Busy), "{holder} open");
        assert_eq!(h.changes(), vec![], "{holder} open");
        assert_eq!(h.owner.counts(), (2, 1));
        assert_eq!(h.dm.lock().unwrap().parts.len(), 1);
        let r = h.owner.on_command(Command::DelMaps);
        assert_eq!(r, Err(HandlerError::Busy), "{holder} open");
    }
    assert_eq!(HandlerError::Busy.reply(), "fail\nmap or partition in use\n");
}

/// `del maps` removes the partition maps of every map, and the multipath maps the
/// daemon does not know, as upstream's dm_flush_maps.
#[test]
fn del_maps_removes_partitions_and_unknown_maps() {
    let f = FakeSys::new();
    two_paths(&f, "sda", "sdb");
    let mut dm = DmState::default();
    dm.preload("stray", "mpath-3600000000000000000000000000000ff", TWO_PATH_TABLE);
    let mut h = Harness::new(&f, GREEDY, dm);
    h.owner.coldplug();
    h.dm.lock()
        .unwrap()
        .parts
        .insert("mpatha-part1".into(), ("mpatha".into(), true));
    h.calls();
    assert_eq!(h.cmd(Command::DelMaps), "");
    let st = h.dm.lock().unwrap();
    assert!(st.maps.is_empty() && st.parts.is_empty(), "{:?}", st.maps.keys());
}

/// `flush_on_last_del unused` (the default) with a partition map nobody uses: the map
/// is not in use (upstream's mpath_in_use counts the partitions out), so the partition
/// map and the map go with the last path, without a suspend.
#[test]
fn the_last_path_removed_flushes_a_map_with_an_unused_partition() {
    let conf = "defaults {\n user_friendly_names yes\n find_multipaths greedy\n no_path_retry queue\n}\n";
    let (f, mut h) = with_partition(conf);
    f.remove("sdb", (8, 16));
    h.owner.on_uevent(remove_uevent("sdb", 0));
    f.remove("sda", (8, 0));
    h.calls();
    h.owner.on_uevent(remove_uevent("sda", 1));
    assert_eq!(
        h.changes(),
        vec![
            msg("mpatha", "fail_if_no_path"),
            Call::Remove {
                name: "mpatha-part1".into()
            },
            Call::Remove { name: "mpatha".into() },
        ]
    );
    assert_eq!(h.owner.counts(), (0, 0));
}

/// Upstream's daemon clears a map's action once a reload is done (only `create`
/// stays, `domap` in daemon mode), so `show topology` after a path removal prints
/// no `reload:` prefix.
#[test]
fn topology_after_a_reload_has_no_action_prefix() {
    let f = FakeSys::new();
    two_paths(&f, "sda", "sdb");
    let mut h = Harness::new(&f, GREEDY, DmState::default());
    h.owner.coldplug();
    f.remove("sdb", (8, 16));
    h.owner.on_uevent(remove_uevent("sdb", 0));
    let topo = h.cmd(Command::ShowMapsTopology);
    assert_eq!(
        topo.lines().next().unwrap(),
        format!("mpatha ({WWID}) dm-0 Linux,scsi_debug"),
        "{topo}"
    );
}

#[test]
fn del_path_command_works_like_a_remove_uevent() {
    let f = FakeSys::new();
    two_paths(&f, "sda", "sdb");
    let mut h = Harness::new(&f, GREEDY, DmState::default());
    h.owner.coldplug();
    h.calls();
    assert_eq!(
        h.cmd(Command::DelPath {
            path: "/dev/sda".into()
        }),
        ""
    );
    assert_eq!(
        h.changes(),
        vec![Call::Reload {
            name: "mpatha".into(),
            sectors: SECTORS,
            params: "0 1 alua 1 1 service-time 0 1 1 8:16 1".into()
        }]
    );
    assert_eq!(
        h.owner.on_command(Command::DelPath { path: "sda".into() }),
        Err(HandlerError::DeviceNotFound)
    );
    // `add path` takes it back from sysfs (it is still there).
    assert_eq!(h.cmd(Command::AddPath { path: "sda".into() }), "");
    assert_eq!(
        h.changes(),
        vec![Call::Reload {
            name: "mpatha".into(),
            sectors: SECTORS,
            params: TWO_PATH_TABLE.into()
        }]
    );
}

/// The lab run where host 0 came up as `sda`: `show maps json`, `show maps status`,
/// `show maps` and `show status` as Debian's multipathd 0.9.4 printed them
/// (tests/lab reference_daemon/2paths-*.txt). One deliberate difference: 0.9.4
/// shows manual failback as `-`, current upstream (which we follow) as `manual`.
#[test]
fn show_output_matches_the_reference_daemon() {
    let f = FakeSys::new();
    f.add(&Disk {
        dev: "sda",
        devt: (8, 0),
        host: 0,
        lun: 0,
        wwid: WWID,
        access_state: "active/optimized",
    });
    f.add(&Disk {
        dev: "sdb",
        devt: (8, 16),
        host: 1,
        lun: 0,
        wwid: WWID,
        access_state: "active/non-optimized",
    });
    let mut h = Harness::new(&f, GREEDY, DmState::default());
    h.owner.coldplug();
    let ids = h.scheduled();
    h.check(ids["sda"], PathState::Up);
    h.check(ids["sdb"], PathState::Up);
    assert_eq!(h.cmd(Command::ShowMapsJson), REF_JSON);
    assert_eq!(h.cmd(Command::ShowMapsStatus), REF_MAPS_STATUS);
    assert_eq!(h.cmd(Command::ShowMaps), REF_MAPS);
    assert_eq!(h.cmd(Command::ShowStatus), REF_STATUS);
}

const REF_JSON: &str = r#"{
   "major_version": 0,
   "minor_version": 1,
   "maps": [{
      "name" : "mpatha",
      "uuid" : "333333330000007d0",
      "sysfs" : "dm-0",
      "failback" : "manual",
      "queueing" : "-",
      "paths" : 2,
      "write_prot" : "rw",
      "dm_st" : "active",
      "features" : "0",
      "hwhandler" : "1 alua",
      "action" : "create",
      "path_faults" : 0,
      "vend" : "Linux",
      "prod" : "scsi_debug",
      "rev" : "0191",
      "switch_grp" : 0,
      "map_loads" : 1,
      "total_q_time" : 0,
      "q_timeouts" : 0,
      "path_groups": [{
         "selector" : "service-time 0",
         "pri" : 50,
         "dm_st" : "active",
         "marginal_st" : "normal",
         "group" : 1,
         "paths": [{
            "dev" : "sda",
            "dev_t" : "8:0",
            "dm_st" : "active",
            "dev_st" : "running",
            "chk_st" : "ready",
            "checker" : "tur",
            "pri" : 50,
            "host_wwnn" : "[undef]",
            "target_wwnn" : "[undef]",
            "host_wwpn" : "[undef]",
            "target_wwpn" : "[undef]",
            "host_adapter" : "[undef]",
            "lun_hex" : "0x0000000000000000",
            "marginal_st" : "normal"
         }]
      },{
         "selector" : "service-time 0",
         "pri" : 10,
         "dm_st" : "enabled",
         "marginal_st" : "normal",
         "group" : 2,
         "paths": [{
            "dev" : "sdb",
            "dev_t" : "8:16",
            "dm_st" : "active",
            "dev_st" : "running",
            "chk_st" : "ready",
            "checker" : "tur",
            "pri" : 10,
            "host_wwnn" : "[undef]",
            "target_wwnn" : "[undef]",
            "host_wwpn" : "[undef]",
            "target_wwpn" : "[undef]",
            "host_adapter" : "[undef]",
            "lun_hex" : "0x0000000000000000",
            "marginal_st" : "normal"
         }]
      }]
   }]
}
"#;

const REF_MAPS_STATUS: &str =
    "name   failback queueing paths dm-st  write_prot\nmpatha manual   -        2     active rw        \n";

const REF_MAPS: &str = "name   sysfs uuid             \nmpatha dm-0  333333330000007d0\n";

const REF_STATUS: &str = "path checker states:\nup                  2\n\npaths: 2\nbusy: False\n";

/// The lab's offline/online cycle (reference 2paths-failed-*.txt): the checker
/// finds sdb's device offline, the daemon fails it in DM and shows it
/// `failed faulty offline`; once it runs again the next check reinstates it.
/// A controller failover swaps the ports' ALUA states. Each check brings the
/// path's refreshed priority; with group_by_prio and failback immediate the map is
/// regrouped (reloaded) as upstream does, the other paths are checked at once so
/// theirs follow, and an unchanged priority changes nothing.
#[test]
fn a_changed_priority_regroups_a_group_by_prio_map() {
    let f = FakeSys::new();
    two_paths(&f, "sda", "sdb");
    let conf = "defaults {\n user_friendly_names yes\n find_multipaths greedy\n failback immediate\n}\n";
    let mut h = Harness::new(&f, conf, DmState::default());
    h.owner.coldplug();
    let ids = h.scheduled();
    let check = |h: &mut Harness, dev: &str, prio: i32| {
        h.owner.on_check(CheckOutcome {
            path_id: ids[dev],
            result: Verdict::new(PathState::Up, ""),
            prio: Some(prio),
            pr: None,
            took: Duration::from_millis(1),
        });
    };
    check(&mut h, "sda", 10);
    check(&mut h, "sdb", 50);
    h.calls();
    // Unchanged priorities: no reload, no group switch.
    check(&mut h, "sda", 10);
    check(&mut h, "sdb", 50);
    h.controls();
    assert_eq!(h.changes(), vec![]);
    // Failover: port A (sda) becomes optimized. Its check alone would put both
    // paths at 50 (one group): as upstream, the map's other paths are refreshed
    // first, so there is no reload yet and sdb is checked at once.
    check(&mut h, "sda", 50);
    let reload = |params: &str| Call::Reload {
        name: "mpatha".into(),
        sectors: SECTORS,
        params: params.into(),
    };
    assert_eq!(h.changes(), vec![]);
    assert!(
        h.controls()
            .iter()
            .any(|c| matches!(c, Control::Schedule { req, in_secs: 0 } if req.path == ids["sdb"])),
    );
    // sdb's refreshed priority completes the round: one reload, two groups.
    check(&mut h, "sdb", 10);
    assert_eq!(
        h.changes(),
        vec![reload(
            "0 1 alua 2 1 service-time 0 1 1 8:0 1 service-time 0 1 1 8:16 1"
        )]
    );
    let rows = h.path_rows();
    assert_eq!((rows["sda"][3].as_str(), rows["sdb"][3].as_str()), ("50", "10"));
    // Same priorities again: nothing to do.
    check(&mut h, "sda", 50);
    check(&mut h, "sdb", 10);
    assert_eq!(h.changes(), vec![]);
}

#[test]
fn a_regroup_waits_for_the_other_paths_refresh_even_when_it_is_unchanged() {
    let f = FakeSys::new();
    two_paths(&f, "sda", "sdb");
    let conf = "defaults {\n user_friendly_names yes\n find_multipaths greedy\n failback immediate\n}\n";
    let mut h = Harness::new(&f, conf, DmState::default());
    h.owner.coldplug();
    let ids = h.scheduled();
    let check = |h: &mut Harness, dev: &str, prio: i32| {
        h.owner.on_check(CheckOutcome {
            path_id: ids[dev],
            result: Verdict::new(PathState::Up, ""),
            prio: Some(prio),
            pr: None,
            took: Duration::from_millis(1),
        });
    };
    check(&mut h, "sda", 10);
    check(&mut h, "sdb", 50);
    h.calls();
    h.controls();
    // sda's priority changes; sda checked again meanwhile does not end the wait
    check(&mut h, "sda", 50);
    check(&mut h, "sda", 50);
    assert_eq!(h.changes(), vec![]);
    // sdb answers with the priority it had: the round is complete, both at 50 are one group
    check(&mut h, "sdb", 50);
    assert_eq!(
        h.changes(),
        vec![Call::Reload {
            name: "mpatha".into(),
            sectors: SECTORS,
            params: "0 1 alua 1 1 service-time 0 2 1 8:16 1 8:0 1".into(),
        }]
    );
}

#[test]
fn offline_path_is_failed_then_reinstated_when_it_runs_again() {
    let f = FakeSys::new();
    f.add(&Disk {
        dev: "sda",
        devt: (8, 0),
        host: 0,
        lun: 0,
        wwid: WWID,
        access_state: "active/optimized",
    });
    f.add(&Disk {
        dev: "sdb",
        devt: (8, 16),
        host: 1,
        lun: 0,
        wwid: WWID,
        access_state: "active/non-optimized",
    });
    let mut h = Harness::new(&f, GREEDY, DmState::default());
    h.owner.coldplug();
    let ids = h.scheduled();
    h.check(ids["sda"], PathState::Up);
    h.check(ids["sdb"], PathState::Up);
    h.calls();

    let state = f.sys("block/sdb/device/state");
    fs::write(&state, "offline\n").unwrap();
    h.owner.on_check(CheckOutcome {
        path_id: ids["sdb"],
        result: Verdict::offline(),
        prio: None,
        pr: None,
        took: Duration::ZERO,
    });
    assert_eq!(h.changes(), vec![msg("mpatha", "fail_path 8:16")]);
    let out = h.cmd(Command::ShowPaths);
    let rows: Vec<Vec<&str>> = out.lines().skip(1).map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(
        rows[0][..7],
        ["0:0:0:0", "sda", "8:0", "50", "active", "ready", "running"]
    );
    assert_eq!(
        rows[1][..7],
        ["1:0:0:0", "sdb", "8:16", "10", "failed", "faulty", "offline"]
    );
    {
        let st = h.dm.lock().unwrap();
        assert_eq!(
            st.status_of(&st.maps["mpatha"]).unwrap(),
            "2 0 0 0 2 1 A 0 1 2 8:0 A 0 0 1 E 0 1 2 8:16 F 0 0 1"
        );
    }
    // Still down on the next check: nothing more is sent.
    h.owner.on_check(CheckOutcome {
        path_id: ids["sdb"],
        result: Verdict::offline(),
        prio: None,
        pr: None,
        took: Duration::ZERO,
    });
    assert_eq!(h.changes(), vec![]);

    fs::write(&state, "running\n").unwrap();
    h.check(ids["sdb"], PathState::Up);
    assert_eq!(h.changes(), vec![msg("mpatha", "reinstate_path 8:16")]);
    assert_eq!(h.path_rows()["sdb"][4..7], ["active", "ready", "running"]);
    assert_eq!(
        h.cmd(Command::ShowStatus),
        "path checker states:\nup                  2\n\npaths: 2\nbusy: False\n"
    );
}

#[test]
fn queueing_and_switch_group_commands() {
    let f = FakeSys::new();
    two_paths(&f, "sda", "sdb");
    let conf = "defaults {\n user_friendly_names yes\n find_multipaths greedy\n no_path_retry queue\n}\n";
    let mut h = Harness::new(&f, conf, DmState::default());
    h.owner.coldplug();
    assert_eq!(
        creates(h.changes()),
        vec![(
            "mpatha".into(),
            format!("mpath-{WWID}"),
            "1 queue_if_no_path 1 alua 2 1 service-time 0 1 1 8:16 1 service-time 0 1 1 8:0 1".into()
        )]
    );
    let ids = h.scheduled();
    h.check(ids["sda"], PathState::Up);
    h.check(ids["sdb"], PathState::Up);
    h.calls();

    assert_eq!(
        h.cmd(Command::DisableQueueing {
            map: Some("mpatha".into())
        }),
        ""
    );
    assert_eq!(h.changes(), vec![msg("mpatha", "fail_if_no_path")]);
    let st = h.cmd(Command::ShowMapsStatus);
    assert_eq!(
        st.lines().nth(1).unwrap().split_whitespace().nth(2),
        Some("off"),
        "{st}"
    );
    assert_eq!(
        h.cmd(Command::RestoreQueueing {
            map: Some("/dev/dm-0".into())
        }),
        ""
    );
    assert_eq!(h.changes(), vec![msg("mpatha", "queue_if_no_path")]);
    let st = h.cmd(Command::ShowMapsStatus);
    assert_eq!(st.lines().nth(1).unwrap().split_whitespace().nth(2), Some("on"), "{st}");
    assert_eq!(
        h.owner.on_command(Command::DisableQueueing {
            map: Some("mpathz".into())
        }),
        Err(HandlerError::DeviceNotFound)
    );
    // Without a map: every map.
    assert_eq!(h.cmd(Command::DisableQueueing { map: None }), "");
    assert_eq!(h.changes(), vec![msg("mpatha", "fail_if_no_path")]);

    assert_eq!(
        h.cmd(Command::SwitchGroup {
            map: WWID.into(),
            group: "2".into()
        }),
        ""
    );
    assert_eq!(h.changes(), vec![msg("mpatha", "switch_group 2")]);
    assert_eq!(
        h.owner.on_command(Command::SwitchGroup {
            map: "mpathz".into(),
            group: "1".into()
        }),
        Err(HandlerError::DeviceNotFound)
    );
}

/// `map_loads` counts the tables loaded (a `resize` of a map that kept its size loads none),
/// the counters survive a reload, and a reconfigure starts them again, as upstream builds
/// its maps anew then (measured in cli_compat_upstream).
#[test]
fn map_counters_count_real_loads_and_restart_on_reconfigure() {
    let f = FakeSys::new();
    two_paths(&f, "sda", "sdb");
    let conf = "defaults {\n user_friendly_names yes\n find_multipaths greedy\n}\n";
    let mut h = Harness::new(&f, conf, DmState::default());
    h.owner.coldplug();
    let ids = h.scheduled();
    h.check(ids["sda"], PathState::Up);
    h.check(ids["sdb"], PathState::Up);
    // name path_faults switch_grp map_loads ...
    let stats = |h: &mut Harness| {
        let s = h.cmd(Command::ShowMapsStats);
        s.lines()
            .nth(1)
            .unwrap()
            .split_whitespace()
            .skip(1)
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(stats(&mut h), "0 0 1", "created");
    // A fault is counted when DM's event is handled, while the kernel has the path failed;
    // a path reinstated before its event came is not counted (as upstream's
    // update_multipath, which reads the status then).
    assert_eq!(h.cmd(Command::FailPath { path: "sdb".into() }), "");
    assert_eq!(h.cmd(Command::ReinstatePath { path: "sdb".into() }), "");
    h.owner.on_uevent(path_failed("mpatha", "8:16", 1));
    assert_eq!(stats(&mut h), "0 0 1", "reinstated before DM's event was handled");
    assert_eq!(h.cmd(Command::FailPath { path: "sda".into() }), "");
    assert_eq!(stats(&mut h), "0 0 1", "not before DM's event");
    h.owner.on_uevent(path_failed("mpatha", "8:0", 2));
    assert_eq!(stats(&mut h), "1 0 1", "DM's event for a path it still has failed");
    h.owner.on_uevent(path_failed("mpatha", "8:0", 3));
    assert_eq!(stats(&mut h), "1 0 1", "counted once");
    assert_eq!(h.cmd(Command::Resize { map: "mpatha".into() }), "");
    assert_eq!(stats(&mut h), "1 0 1", "same size: nothing loaded");
    h.cmd(Command::Reload { map: "mpatha".into() });
    assert_eq!(stats(&mut h), "1 0 2", "a reload counts, the fault stays");
    h.check(ids["sda"], PathState::Up);
    h.owner.reconfigure(config(conf));
    // sdb, still failed, puts its group last: the groups' order changed, so the map is
    // loaded (upstream would switch groups by number instead, see daemon/adopt.rs)
    assert_eq!(stats(&mut h), "0 0 1", "counters start again");
}

/// `show maps status` shows a map suspended by `suspend map` as `suspend` until `resume
/// map` (upstream reads it from DM; measured in cli_compat_upstream), and a reload, which
/// resumes the map, ends it too.
#[test]
fn a_suspended_map_shows_suspend_until_it_is_resumed() {
    let f = FakeSys::new();
    two_paths(&f, "sda", "sdb");
    let mut h = Harness::new(&f, GREEDY, DmState::default());
    h.owner.coldplug();
    let dm_st = |h: &mut Harness| {
        h.cmd(Command::ShowMapsFormat {
            fmt: "%n %t".into(),
            raw: true,
        })
    };
    assert_eq!(dm_st(&mut h), "mpatha active\n");
    assert_eq!(h.cmd(Command::Suspend { map: "mpatha".into() }), "");
    assert_eq!(dm_st(&mut h), "mpatha suspend\n");
    assert_eq!(h.cmd(Command::Resume { map: "mpatha".into() }), "");
    assert_eq!(dm_st(&mut h), "mpatha active\n");
    assert_eq!(h.cmd(Command::Suspend { map: "mpatha".into() }), "");
    assert_eq!(h.cmd(Command::Reload { map: "mpatha".into() }), "");
    assert_eq!(dm_st(&mut h), "mpatha active\n");
}

/// `setprstatus` (libmpathpersist after a registration), as upstream 0.14.3 answers it
/// (measured in cli_compat_upstream): without a reservation key the flag does not stay set;
/// with one it does, and `unsetprstatus` clears it.
#[test]
fn setprstatus_stays_set_only_with_a_reservation_key() {
    for (key, after_set) in [("", "unset\n"), (" reservation_key 0x123abc\n", "set\n")] {
        let f = FakeSys::new();
        two_paths(&f, "sda", "sdb");
        let conf = format!("defaults {{\n user_friendly_names yes\n find_multipaths greedy\n{key}}}\n");
        let mut h = Harness::new(&f, &conf, DmState::default());
        h.owner.coldplug();
        let ids = h.scheduled();
        h.check(ids["sda"], PathState::Up);
        h.check(ids["sdb"], PathState::Up);
        let get = |h: &mut Harness| h.cmd(Command::GetPrStatus { map: "mpatha".into() });
        // with a key and no registration yet, upstream 0.14.3 does not know
        let before = if key.is_empty() { "unset\n" } else { "unknown\n" };
        assert_eq!(get(&mut h), before, "key {key:?}");
        assert_eq!(
            h.cmd(Command::SetPrStatus {
                map: "mpatha".into(),
                pathlist: None
            }),
            ""
        );
        assert_eq!(get(&mut h), after_set, "key {key:?}");
        assert_eq!(h.cmd(Command::UnsetPrStatus { map: "mpatha".into() }), "");
        assert_eq!(get(&mut h), "unset\n");
    }
}

/// After `switchgroup` to a worse group, failback immediate switches back at the next check
/// and counts it (`switch_grp`), as upstream does: the group the kernel will use next is the
/// one compared, not the group IO last went to (no IO has gone to the new group yet). Then
/// `fail path` counts a path fault (`path_faults`). Measured in cli_compat_upstream.
#[test]
fn failback_after_switchgroup_command_switches_back_and_counts() {
    let f = FakeSys::new();
    two_paths(&f, "sda", "sdb");
    let conf = "defaults {\n user_friendly_names yes\n find_multipaths greedy\n failback immediate\n}\n";
    let mut h = Harness::new(&f, conf, DmState::default());
    h.owner.coldplug();
    let ids = h.scheduled();
    let check = |h: &mut Harness, dev: &str, prio: i32| {
        h.owner.on_check(CheckOutcome {
            path_id: ids[dev],
            result: Verdict::new(PathState::Up, ""),
            prio: Some(prio),
            pr: None,
            took: Duration::from_millis(1),
        });
    };
    check(&mut h, "sda", 10);
    check(&mut h, "sdb", 50);
    h.calls();
    assert_eq!(
        h.cmd(Command::SwitchGroup {
            map: "mpatha".into(),
            group: "2".into()
        }),
        ""
    );
    assert_eq!(h.changes(), vec![msg("mpatha", "switch_group 2")]);
    check(&mut h, "sda", 10);
    assert_eq!(h.changes(), vec![msg("mpatha", "switch_group 1")]);
    // `fail path` counts a path fault once, when DM's report of it is handled, as upstream
    assert_eq!(h.cmd(Command::FailPath { path: "sda".into() }), "");
    assert_eq!(h.cmd(Command::FailPath { path: "sda".into() }), "");
    h.owner.on_uevent(path_failed("mpatha", "8:0", 1));
    let stats = h.cmd(Command::ShowMapsStats);
    assert_eq!(
        stats.lines().nth(1).unwrap().split_whitespace().nth(1),
        Some("1"),
        "{stats}"
    );
    assert_eq!(
        stats.lines().nth(1).unwrap().split_whitespace().nth(2),
        Some("1"),
        "{stats}"
    );
}

/// `set marginal path P` (upstream `cli_set_marginal`): flag the path marginal and
/// reload; with `marginal_pathgroups on` it moves to a group of its own after the
/// normal ones. `unset marginal path P` undoes it.
#[test]
fn set_marginal_path_moves_it_to_a_marginal_group() {
    let f = FakeSys::new();
    two_paths(&f, "sda", "sdb");
    let conf = "defaults {\n user_friendly_names yes\n find_multipaths greedy\n marginal_pathgroups on\n}\n";
    let mut h = Harness::new(&f, conf, DmState::default());
    h.owner.coldplug();
    h.calls();
    assert_eq!(
        h.owner.on_command(Command::SetMarginal { path: "sdb".into() }),
        Ok(String::new())
    );
    assert_eq!(
        h.changes(),
        vec![Call::Reload {
            name: "mpatha".into(),
            sectors: SECTORS,
            params: "0 1 alua 2 1 service-time 0 1 1 8:0 1 service-time 0 1 1 8:16 1".into()
        }]
    );
    assert_eq!(
        h.owner.on_command(Command::UnsetMarginal { path: "sdb".into() }),
        Ok(String::new())
    );
    assert_eq!(
        h.changes(),
        vec![Call::Reload {
            name: "mpatha".into(),
            sectors: SECTORS,
            params: TWO_PATH_TABLE.into()
        }]
    );
}

/// Commands upstream answers that need nothing beyond the current `MapOps`.
#[test]
fn map_and_listing_commands_are_answered() {
    let f = FakeSys::new();
    two_paths(&f, "sda", "sdb");
    let mut h = Harness::new(&f, GREEDY, DmState::default());
    h.owner.coldplug();
    h.calls();
    assert_eq!(
        h.owner.on_command(Command::Reload { map: "mpatha".into() }),
        Ok(String::new())
    );
    assert_eq!(
        h.changes(),
        vec![Call::Reload {
            name: "mpatha".into(),
            sectors: SECTORS,
            params: TWO_PATH_TABLE.into()
        }]
    );
    assert_eq!(
        h.owner.on_command(Command::ResetMapStats { map: "mpatha".into() }),
        Ok(String::new())
    );
    assert_eq!(h.owner.on_command(Command::ResetMapsStats), Ok(String::new()));
    let devices = h.owner.on_command(Command::ShowDevices).expect("show devices");
    assert!(devices.contains("sda") && devices.contains("sdb"), "{devices}");
    let blacklist = h.owner.on_command(Command::ShowBlacklist).expect("show blacklist");
    assert!(blacklist.contains("device node rules:"), "{blacklist}");
}

#[test]
fn blacklisted_paths_are_left_out() {
    let f = FakeSys::new();
    two_paths(&f, "sda", "sdb");
    let conf = "defaults {\n user_friendly_names yes\n find_multipaths greedy\n}\nblacklist {\n devnode \"^sdb$\"\n}\n";
    let mut h = Harness::new(&f, conf, DmState::default());
    h.owner.coldplug();
    assert_eq!(
        creates(h.changes()),
        vec![(
            "mpatha".into(),
            format!("mpath-{WWID}"),
            "0 1 alua 1 1 service-time 0 1 1 8:0 1".into()
        )]
    );
    assert_eq!(h.owner.counts(), (1, 1));

    let conf = format!("defaults {{\n find_multipaths greedy\n}}\nblacklist {{\n wwid \"^{WWID}$\"\n}}\n");
    let mut h = Harness::new(&f, &conf, DmState::default());
    h.owner.coldplug();
    assert_eq!(h.changes(), vec![]);
    assert_eq!(h.owner.counts(), (0, 0));
}

#[test]
fn paths_without_an_id_wwn_or_scsi_ident_property_are_blacklisted() {
    let f = FakeSys::new();
    two_paths(&f, "sda", "sdb");
    for devt in ["b8:0", "b8:16"] {
        fs::write(f.udev().join(devt), format!("I:1\nE:ID_SERIAL={WWID}\nE:ID_BUS=scsi\n")).unwrap();
    }
    let mut h = Harness::new(&f, GREEDY, DmState::default());
    h.owner.coldplug();
    assert_eq!(h.changes(), vec![]);
    assert_eq!(h.owner.counts(), (0, 0));
}

#[test]
fn reconfigure_reloads_maps_with_the_new_settings() {
    let f = FakeSys::new();
    two_paths(&f, "sda", "sdb");
    let mut h = Harness::new(&f, GREEDY, DmState::default());
    h.owner.coldplug();
    h.calls();
    h.owner.reconfigure(config(
        "defaults {\n user_friendly_names yes\n find_multipaths greedy\n no_path_retry queue\n}\n",
    ));
    assert_eq!(
        h.changes(),
        vec![Call::Reload {
            name: "mpatha".into(),
            sectors: SECTORS,
            params: format!("1 queue_if_no_path {}", &TWO_PATH_TABLE[2..]),
        }]
    );
    assert_eq!(h.owner.counts(), (2, 1));
    let st = h.cmd(Command::ShowMapsStatus);
    assert_eq!(st.lines().nth(1).unwrap().split_whitespace().nth(2), Some("on"), "{st}");
}

/// SIGHUP and the `reconfigure` command read multipath.conf again; one that does
/// not load leaves the old configuration in force.
#[test]
fn reconfigure_command_rereads_the_configuration_file() {
    let f = FakeSys::new();
    two_paths(&f, "sda", "sdb");
    let mut h = Harness::new(&f, GREEDY, DmState::default());
    h.owner.coldplug();
    h.calls();
    fs::write(
        f.conf(),
        "defaults {\n user_friendly_names yes\n find_multipaths greedy\n no_path_retry queue\n}\n",
    )
    .unwrap();
    assert_eq!(h.cmd(Command::Reconfigure { all: false }), "");
    // Nothing changes until the load, which runs on another thread, is handed back.
    assert!(h.cmd(Command::ShowDaemon).ends_with(" (pending reconfigure)\n"));
    assert_eq!(h.changes(), vec![]);
    h.finish_reload();
    assert!(!h.cmd(Command::ShowDaemon).contains("pending"));
    assert_eq!(
        h.changes(),
        vec![Call::Reload {
            name: "mpatha".into(),
            sectors: SECTORS,
            params: format!("1 queue_if_no_path {}", &TWO_PATH_TABLE[2..]),
        }]
    );
    // A main file that cannot be read (here a directory) does not load.
    fs::remove_file(f.conf()).unwrap();
    fs::create_dir(f.conf()).unwrap();
    h.owner.reread_config();
    h.finish_reload();
    assert_eq!(h.changes(), vec![]);
    let st = h.cmd(Command::ShowMapsStatus);
    assert_eq!(st.lines().nth(1).unwrap().split_whitespace().nth(2), Some("on"), "{st}");
}

/// The `shutdown` command, like SIGTERM, stops the checker loop and leaves the
/// owner in the state the run loop ends on.
#[test]
fn shutdown_command_stops_the_checker_and_ends_the_daemon() {
    let f = FakeSys::new();
    two_paths(&f, "sda", "sdb");
    let mut h = Harness::new(&f, GREEDY, DmState::default());
    h.owner.coldplug();
    h.controls();
    assert_eq!(h.cmd(Command::Shutdown), "");
    assert_eq!(h.controls(), vec![Control::Shutdown]);
    assert_eq!(h.owner.state, DaemonState::Shutdown);
}

/// Upstream's reconfigure discovers paths again under the new configuration, so a
/// newly blacklisted path leaves its map and a newly allowed WWID gets one.
#[test]
fn reconfigure_applies_a_new_blacklist_and_find_multipaths() {
    let f = FakeSys::new();
    two_paths(&f, "sda", "sdb");
    let mut h = Harness::new(&f, GREEDY, DmState::default());
    h.owner.coldplug();
    h.calls();
    h.owner.reconfigure(config(
        "defaults {\n user_friendly_names yes\n find_multipaths greedy\n}\nblacklist {\n devnode \"^sdb$\"\n}\n",
    ));
    assert_eq!(
        h.changes(),
        vec![Call::Reload {
            name: "mpatha".into(),
            sectors: SECTORS,
            params: "0 1 alua 1 1 service-time 0 1 1 8:0 1".into()
        }]
    );
    assert_eq!(h.owner.counts(), (1, 1));

    // The first daemon recorded the WWID when it created the map; strict must not see it.
    std::fs::remove_file(f.dir.path().join("etc/multipath/wwids")).expect("wwids file written on create");
    let strict = "defaults {\n user_friendly_names yes\n find_multipaths strict\n}\n";
    let mut h = Harness::new(&f, strict, DmState::default());
    h.owner.coldplug();
    assert_eq!(h.owner.counts(), (2, 0));
    h.calls();
    h.owner.reconfigure(config(GREEDY));
    assert_eq!(creates(h.changes()).len(), 1);
}

#[test]
fn aliases_follow_the_bindings_file() {
    let f = FakeSys::new();
    two_paths(&f, "sda", "sdb");
    fs::write(
        f.state().join("bindings"),
        "# Multipath bindings, Version : 1.0\nmpatha 3600000000000000000000000000000aa\nmpathc 333333330000007d0\n",
    )
    .unwrap();
    let mut h = Harness::new(&f, GREEDY, DmState::default());
    h.owner.coldplug();
    assert_eq!(
        creates(h.changes()),
        vec![("mpathc".into(), format!("mpath-{WWID}"), TWO_PATH_TABLE.into())]
    );

    let f = FakeSys::new();
    two_paths(&f, "sda", "sdb");
    fs::write(f.state().join("bindings"), "mpatha 3600000000000000000000000000000aa\n").unwrap();
    let mut h = Harness::new(&f, GREEDY, DmState::default());
    h.owner.coldplug();
    assert_eq!(creates(h.changes())[0].0, "mpathb");
    assert!(
        f.bindings().lines().any(|l| l == format!("mpathb {WWID}")),
        "{}",
        f.bindings()
    );

    // Without user_friendly_names the map is named by its WWID and no binding is written.
    let f = FakeSys::new();
    two_paths(&f, "sda", "sdb");
    let mut h = Harness::new(&f, "defaults {\n find_multipaths greedy\n}\n", DmState::default());
    h.owner.coldplug();
    assert_eq!(creates(h.changes())[0].0, WWID);
    assert_eq!(f.bindings(), "");
    let topo = h.cmd(Command::ShowMapsTopology);
    assert_eq!(
        topo.lines().next().unwrap(),
        format!("create: {WWID} dm-0 Linux,scsi_debug")
    );
}

/// A multipath map whose paths are all gone (or whose WWID is not ours) still holds
/// its name: upstream tracks it and does not hand that alias to another WWID.
#[test]
fn an_alias_held_by_a_pathless_kernel_map_is_not_reused() {
    let f = FakeSys::new();
    two_paths(&f, "sda", "sdb");
    let mut dm = DmState::default();
    dm.preload(
        "mpatha",
        "mpath-3600000000000000000000000000000aa",
        "0 0 1 1 service-time 0 1 1 8:240 1",
    );
    let mut h = Harness::new(&f, GREEDY, dm);
    h.owner.coldplug();
    assert_eq!(
        creates(h.changes()),
        vec![("mpathb".into(), format!("mpath-{WWID}"), TWO_PATH_TABLE.into())]
    );
}

/// Upstream also lists such a pathless map in `show maps`.
#[test]
#[ignore = "not implemented: multipath maps without any known path are not tracked by the owner, so show maps omits them"]
fn a_pathless_kernel_map_is_listed() {
    let f = FakeSys::new();
    two_paths(&f, "sda", "sdb");
    let mut dm = DmState::default();
    dm.preload(
        "mpatha",
        "mpath-3600000000000000000000000000000aa",
        "0 0 1 1 service-time 0 1 1 8:240 1",
    );
    let mut h = Harness::new(&f, GREEDY, dm);
    h.owner.coldplug();
    let maps = h.cmd(Command::ShowMaps);
    assert!(maps.contains("mpatha") && maps.contains("mpathb"), "{maps}");
}

// ---- sysfs attributes set at map setup ------------------------------------------

impl FakeSys {
    /// Like [`FakeSys::add`], the SCSI device under `parent` (its transport).
    fn add_under(&self, d: &Disk, parent: &str) {
        let mut disk = scsi_debug(d.dev, d.devt, d.host, d.lun, d.access_state);
        disk.parent = parent.to_string();
        disk.attrs = vec![("dh_state", "alua\n"), ("timeout", "30\n")];
        self.add_scsi(&disk);
        let wwn = format!("0x{}", &d.wwid[1..]);
        self.add_udev(d.devt, &[("ID_SERIAL", d.wwid), ("ID_WWN", &wwn), ("ID_BUS", "scsi")]);
    }

    /// The SCSI hosts' `eh_deadline` files, as the kernel shows them (`off`).
    fn add_hosts(&self, hosts: &[u32]) {
        for h in hosts {
            self.write(&self.sys(&format!("class/scsi_host/host{h}/eh_deadline")), b"off\n");
        }
    }

    fn attr(&self, rel: &str) -> String {
        fs::read_to_string(self.sys(rel)).unwrap()
    }
}

fn disk(dev: &str, minor: u32, host: u32) -> Disk<'_> {
    Disk {
        dev,
        devt: (8, minor),
        host,
        lun: 0,
        wwid: WWID,
        access_state: "active/optimized",
    }
}

#[test]
fn fc_paths_get_their_remote_port_timeouts_and_eh_deadline() {
    let f = FakeSys::new();
    for (dev, minor, host) in [("sdc", 32, 3), ("sdd", 48, 4)] {
        let rport = format!("rport-{host}:0-1");
        f.add_under(
            &disk(dev, minor, host),
            &format!("pci0000:00/0000:00:0{host}.0/host{host}/{rport}/target{host}:0:0"),
        );
        let class = format!("class/fc_remote_ports/{rport}");
        f.write(&f.sys(&format!("{class}/node_name")), b"0x20000024ff000001\n");
        f.write(&f.sys(&format!("{class}/dev_loss_tmo")), b"30\n");
        f.write(&f.sys(&format!("{class}/fast_io_fail_tmo")), b"off\n");
    }
    f.add_hosts(&[3, 4]);
    let conf = "defaults {\n user_friendly_names yes\n find_multipaths greedy\n no_path_retry 12\n \
                dev_loss_tmo 30\n eh_deadline 20\n}\n";
    let mut h = Harness::new(&f, conf, DmState::default());
    h.owner.coldplug();
    assert_eq!(h.owner.counts(), (2, 1));
    for host in [3, 4] {
        let class = format!("class/fc_remote_ports/rport-{host}:0-1");
        // fast_io_fail_tmo: the built-in 5; dev_loss_tmo raised from 30 to cover
        // no_path_retry: 12 checks x 5 s + 1 s per minute + 5 s.
        assert_eq!(f.attr(&format!("{class}/fast_io_fail_tmo")), "5");
        assert_eq!(f.attr(&format!("{class}/dev_loss_tmo")), "66");
        assert_eq!(f.attr(&format!("class/scsi_host/host{host}/eh_deadline")), "20");
    }
}

#[test]
fn fc_fast_io_fail_above_the_port_dev_loss_raises_it_first() {
    let f = FakeSys::new();
    f.add_under(
        &disk("sdc", 32, 3),
        "pci0000:00/0000:00:03.0/host3/rport-3:0-1/target3:0:0",
    );
    f.add_under(&disk("sdd", 48, 4), "pseudo_0/adapter4/host4/target4:0:0");
    let class = "class/fc_remote_ports/rport-3:0-1";
    f.write(&f.sys(&format!("{class}/node_name")), b"0x20000024ff000001\n");
    f.write(&f.sys(&format!("{class}/dev_loss_tmo")), b"10\n");
    f.write(&f.sys(&format!("{class}/fast_io_fail_tmo")), b"off\n");
    let conf = "defaults {\n user_friendly_names yes\n find_multipaths greedy\n fast_io_fail_tmo 15\n}\n";
    let mut h = Harness::new(&f, conf, DmState::default());
    h.owner.coldplug();
    // dev_loss_tmo went to 16 so that the port takes fast_io_fail_tmo 15; with
    // no dev_loss_tmo configured it stays there.
    assert_eq!(f.attr(&format!("{class}/fast_io_fail_tmo")), "15");
    assert_eq!(f.attr(&format!("{class}/dev_loss_tmo")), "16");
}

#[test]
fn iscsi_paths_get_fast_io_fail_as_session_recovery_tmo() {
    let f = FakeSys::new();
    for (dev, minor, host, session) in [("sdc", 32, 3, 1), ("sdd", 48, 4, 2)] {
        f.add_under(
            &disk(dev, minor, host),
            &format!("platform/host{host}/session{session}/target{host}:0:0"),
        );
        let class = format!("class/iscsi_session/session{session}");
        f.write(
            &f.sys(&format!("{class}/targetname")),
            b"iqn.2003-01.org.linux-iscsi:t1\n",
        );
        f.write(&f.sys(&format!("{class}/recovery_tmo")), b"120\n");
    }
    let conf = "defaults {\n user_friendly_names yes\n find_multipaths greedy\n}\n\
                overrides {\n protocol {\n  type scsi:iscsi\n  fast_io_fail_tmo 15\n  dev_loss_tmo 60\n }\n}\n";
    let mut h = Harness::new(&f, conf, DmState::default());
    h.owner.coldplug();
    assert_eq!(h.owner.counts(), (2, 1));
    assert_eq!(f.attr("class/iscsi_session/session1/recovery_tmo"), "15");
    assert_eq!(f.attr("class/iscsi_session/session2/recovery_tmo"), "15");
}

#[test]
fn eh_deadline_goes_to_each_scsi_host_and_unset_leaves_it_alone() {
    let f = FakeSys::new();
    two_paths(&f, "sda", "sdb");
    f.add_hosts(&[0, 1]);
    let conf =
        format!("{GREEDY}devices {{\n device {{\n  vendor Linux\n  product scsi_debug\n  eh_deadline off\n }}\n}}\n");
    let mut h = Harness::new(&f, &conf, DmState::default());
    h.owner.coldplug();
    assert_eq!(f.attr("class/scsi_host/host0/eh_deadline"), "off");
    f.add_hosts(&[0, 1]);
    fs::write(f.sys("class/scsi_host/host1/eh_deadline"), "7\n").unwrap();
    let mut h = Harness::new(&f, GREEDY, DmState::default());
    h.owner.coldplug();
    assert_eq!(f.attr("class/scsi_host/host1/eh_deadline"), "7\n");
    let conf = format!("{GREEDY}overrides {{\n eh_deadline 0\n}}\n");
    let mut h = Harness::new(&f, &conf, DmState::default());
    h.owner.coldplug();
    assert_eq!(f.attr("class/scsi_host/host0/eh_deadline"), "0");
    assert_eq!(f.attr("class/scsi_host/host1/eh_deadline"), "0");
}

#[test]
fn max_sectors_kb_is_set_on_create_and_on_joining_paths_only() {
    let f = FakeSys::new();
    two_paths(&f, "sda", "sdb");
    for d in ["sda", "sdb"] {
        f.write(&f.sys(&format!("block/{d}/queue/max_sectors_kb")), b"512\n");
    }
    let conf = format!("{GREEDY}overrides {{\n max_sectors_kb 256\n}}\n");
    let mut h = Harness::new(&f, &conf, DmState::default());
    h.owner.coldplug();
    assert_eq!(f.attr("block/sda/queue/max_sectors_kb"), "256");
    assert_eq!(f.attr("block/sdb/queue/max_sectors_kb"), "256");
    // A path of the live map is left alone on a reload; a joining one gets the value.
    fs::write(f.sys("block/sda/queue/max_sectors_kb"), "1024\n").unwrap();
    f.add(&Disk {
        dev: "sdc",
        devt: (8, 32),
        host: 2,
        lun: 0,
        wwid: WWID,
        access_state: "standby",
    });
    f.write(&f.sys("block/sdc/queue/max_sectors_kb"), b"512\n");
    h.owner.on_uevent(scsi_uevent("add", "sdc", 2));
    assert_eq!(h.owner.counts(), (3, 1));
    assert_eq!(f.attr("block/sdc/queue/max_sectors_kb"), "256");
    assert_eq!(f.attr("block/sda/queue/max_sectors_kb"), "1024\n");
}

#[test]
fn an_existing_map_keeps_its_paths_max_sectors_kb() {
    let f = FakeSys::new();
    two_paths(&f, "sda", "sdb");
    for d in ["sda", "sdb"] {
        f.write(&f.sys(&format!("block/{d}/queue/max_sectors_kb")), b"512\n");
    }
    let mut dm = DmState::default();
    dm.preload("mpatha", &format!("mpath-{WWID}"), TWO_PATH_TABLE);
    let conf = format!("{GREEDY}overrides {{\n max_sectors_kb 256\n}}\n");
    let mut h = Harness::new(&f, &conf, dm);
    h.owner.coldplug();
    assert_eq!(f.attr("block/sda/queue/max_sectors_kb"), "512\n");
}

/// `queue_without_daemon no` (the default): on the way out every map is switched
/// to `fail_if_no_path`, as upstream's cleanup does, so IO on a map without paths
/// fails instead of hanging with nobody left to reinstate a path.
#[test]
fn shutdown_stops_queueing_unless_queue_without_daemon() {
    let f = FakeSys::new();
    two_paths(&f, "sda", "sdb");
    let mut h = Harness::new(&f, GREEDY, DmState::default());
    h.owner.coldplug();
    h.calls();
    h.owner.shutdown();
    assert_eq!(h.changes(), vec![msg("mpatha", "fail_if_no_path")]);
    // A second request to stop (SIGTERM after `shutdown`) sends nothing more.
    h.owner.shutdown();
    assert_eq!(h.changes(), vec![]);

    let f = FakeSys::new();
    two_paths(&f, "sda", "sdb");
    let conf = "defaults {\n user_friendly_names yes\n find_multipaths greedy\n queue_without_daemon yes\n}\n";
    let mut h = Harness::new(&f, conf, DmState::default());
    h.owner.coldplug();
    h.calls();
    h.owner.shutdown();
    assert_eq!(h.changes(), vec![]);
}

/// `forcequeueing daemon` keeps the maps queueing through the shutdown;
/// `restorequeueing daemon` and a reconfigure undo it.
#[test]
fn forcequeueing_daemon_overrides_queue_without_daemon_no() {
    let f = FakeSys::new();
    two_paths(&f, "sda", "sdb");
    let mut h = Harness::new(&f, GREEDY, DmState::default());
    h.owner.coldplug();
    assert_eq!(h.cmd(Command::ForceQueueingDaemon), "");
    h.calls();
    h.owner.shutdown();
    assert_eq!(h.changes(), vec![]);

    let mut h = Harness::new(&f, GREEDY, DmState::default());
    h.owner.coldplug();
    h.cmd(Command::ForceQueueingDaemon);
    h.cmd(Command::RestoreQueueingDaemon);
    h.calls();
    h.owner.shutdown();
    assert_eq!(h.changes(), vec![msg("mpatha", "fail_if_no_path")]);

    let mut h = Harness::new(&f, GREEDY, DmState::default());
    h.owner.coldplug();
    h.cmd(Command::ForceQueueingDaemon);
    h.owner.reconfigure(config(GREEDY));
    h.calls();
    h.owner.shutdown();
    assert_eq!(h.changes(), vec![msg("mpatha", "fail_if_no_path")]);
}

/// A block uevent for a device that is no SCSI path (no `device` link in sysfs).
fn block_uevent(action: &str, dev: &str) -> Uevent {
    uevent(&[
        ("ACTION", action),
        ("DEVPATH", &format!("/devices/virtual/block/{dev}")),
        ("SUBSYSTEM", "block"),
        ("DEVNAME", &format!("/dev/{dev}")),
        ("DEVTYPE", "disk"),
    ])
}

/// `show devices` is answered from the block device list the owner publishes: it reads
/// sysfs at coldplug and, after a block device's uevent, that device's entry (not all
/// of `/sys/block`, which a storm of thousands of uevents would read once a batch);
/// never for a show; the reply is what upstream's format makes of the sysfs listing.
#[test]
fn show_devices_lists_what_the_owner_read_at_coldplug_and_on_block_uevents() {
    let f = FakeSys::new();
    two_paths(&f, "sda", "sdb");
    f.write(&f.sys("block/loop0/dev"), b"7:0\n");
    f.write(&f.sys("block/xvda/dev"), b"202:0\n");
    let mut h = Harness::new(&f, GREEDY, DmState::default());
    h.owner.coldplug();
    let (publisher, feed) = multipathd::cli::snapshot::channel().unwrap();
    h.owner.publish_to(publisher);
    let mut snap = feed.newest().expect("published at once");
    let show = |s: &multipathd::cli::snapshot::Snapshot| s.answer(&Command::ShowDevices).unwrap().unwrap();
    let listed = |extra: &str| {
        format!(
            "available block devices:\n    loop0 devnode blacklisted, unmonitored\n    \
             sda  devnode whitelisted, monitored\n    sdb  devnode whitelisted, monitored\n{extra}    \
             xvda devnode blacklisted, unmonitored\n"
        )
    };
    assert_eq!(show(&snap), listed(""));
    // A device appears in sysfs: no show reads it until its uevent comes.
    f.write(&f.sys("block/sdc/dev"), b"8:32\n");
    h.owner.publish(multipathd::daemon::owner::Change::All);
    if let Some(s) = feed.newest() {
        snap = s;
    }
    assert_eq!(show(&snap), listed(""), "a show read sysfs");
    // sdc's uevent comes; loop1's has not come yet
    f.write(&f.sys("block/loop1/dev"), b"7:1\n");
    h.owner.on_uevents(vec![block_uevent("add", "sdc")]);
    h.owner.publish(multipathd::daemon::owner::Change::All);
    snap = feed.newest().expect("the new device is published");
    assert_eq!(
        show(&snap),
        listed("    sdc devnode whitelisted, unmonitored\n"),
        "sdc, and not what else sysfs has"
    );
    fs::remove_dir_all(f.sys("block/loop1")).unwrap();
    fs::remove_dir_all(f.sys("block/sdc")).unwrap();
    h.owner.on_uevents(vec![block_uevent("remove", "sdc")]);
    h.owner.publish(multipathd::daemon::owner::Change::All);
    snap = feed.newest().expect("the removal is published");
    assert_eq!(show(&snap), listed(""));
}

/// After a tick or a uevent the owner publishes what its handlers touched, as the run
/// loop has it (`Change::Touched`): the published views are those of a snapshot built
/// afresh, and a tick that changed nothing publishes nothing.
#[test]
fn a_tick_or_a_uevent_publishes_what_it_changed() {
    use multipathd::cli::snapshot::Snapshot;
    use multipathd::daemon::owner::Change;
    let f = FakeSys::new();
    two_paths(&f, "sda", "sdb");
    let conf = "defaults {\n user_friendly_names yes\n find_multipaths greedy\n no_path_retry 12\n}\n";
    let mut h = Harness::new(&f, conf, DmState::default());
    h.owner.coldplug();
    let ids = h.scheduled();
    let (publisher, feed) = multipathd::cli::snapshot::channel().unwrap();
    h.owner.publish_to(publisher);
    let mut snap = feed.newest().expect("published at once");
    let shows = [
        Command::ShowPaths,
        Command::ShowMapsStatus,
        Command::ShowMapsStats,
        Command::ShowMapsJson,
    ];
    let as_afresh = |snap: &Snapshot, owner: &Owner| {
        let fresh = owner.snapshot();
        for c in &shows {
            assert_eq!(snap.answer(c), fresh.answer(c), "{c:?}");
        }
    };
    h.owner.tick();
    h.owner.publish(Change::Touched);
    assert!(feed.newest().is_none(), "a tick that changed nothing published");
    // Each check publishes what it changed, and only that: up until the interval is at
    // its maximum (5, 10, 20 s; the views show it), one more check that changes nothing
    // publishes nothing; then down, and queueing counts down with every tick.
    for state in [PathState::Up, PathState::Up, PathState::Up, PathState::Down] {
        for id in ids.values() {
            h.check(*id, state);
            h.owner.publish(Change::Touched);
            snap = feed.newest().expect("a check that changed the views published them");
            as_afresh(&snap, &h.owner);
        }
    }
    for id in ids.values() {
        h.check(*id, PathState::Down);
        h.owner.publish(Change::Touched);
        assert!(feed.newest().is_none(), "a check that changed nothing published");
    }
    let stats = |s: &Snapshot| s.answer(&Command::ShowMapsStats).unwrap().unwrap();
    let before = stats(&snap);
    h.owner.tick();
    h.owner.publish(Change::Touched);
    snap = feed.newest().expect("the tick's countdown is published");
    assert_ne!(stats(&snap), before, "the queueing time did not move");
    as_afresh(&snap, &h.owner);
    // A uevent adds a path to the map.
    f.add(&Disk {
        dev: "sdc",
        devt: (8, 32),
        host: 2,
        lun: 0,
        wwid: WWID,
        access_state: "standby",
    });
    h.owner.on_uevents(vec![scsi_uevent("add", "sdc", 2)]);
    h.owner.publish(Change::Touched);
    snap = feed.newest().expect("the new path is published");
    let paths = snap.answer(&Command::ShowPaths).unwrap().unwrap();
    assert!(paths.contains("sdc"), "{paths}");
    as_afresh(&snap, &h.owner);
    // The kernel fails a path: its DM state shows it.
    h.owner.on_uevents(vec![path_failed("mpatha", "8:32", 1)]);
    h.owner.publish(Change::Touched);
    snap = feed.newest().expect("the failed path is published");
    as_afresh(&snap, &h.owner);
}

/// detect_checker (on by default): an ALUA path is checked with tur whatever checker its
/// device entry names, as upstream; `detect_checker no` keeps the configured one.
#[test]
fn detect_checker_gives_alua_paths_tur() {
    let kinds = |extra: &str| {
        let f = FakeSys::new();
        two_paths(&f, "sda", "sdb");
        let text = format!("{GREEDY}overrides {{\n path_checker directio\n{extra}}}\n");
        let mut h = Harness::new(&f, &text, DmState::default());
        h.owner.coldplug();
        h.controls()
            .into_iter()
            .filter_map(|c| match c {
                Control::Schedule { req, .. } => Some(req.kind),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(kinds(""), [CheckerKind::Tur, CheckerKind::Tur]);
    assert_eq!(
        kinds(" detect_checker no\n"),
        [CheckerKind::Directio, CheckerKind::Directio]
    );
}

fn dm_uevent(action: &str, name: &str, minor: u32) -> Uevent {
    let dev = format!("dm-{minor}");
    let minor = minor.to_string();
    uevent(&[
        ("ACTION", action),
        ("DEVPATH", &format!("/devices/virtual/block/{dev}")),
        ("SUBSYSTEM", "block"),
        ("DEVNAME", &format!("/dev/{dev}")),
        ("DEVTYPE", "disk"),
        ("MAJOR", "254"),
        ("MINOR", &minor),
        ("DM_NAME", name),
        ("DM_UUID", &format!("mpath-{WWID}")),
    ])
}

/// The `multipath` tool beside the daemon (lab multipath_tool): a map it removes (`-f`,
/// `-F`) is dropped and its paths become orphans with no DM state, as upstream shows them;
/// a map it creates is adopted as it is, without a reload, when it is resumed.
#[test]
fn maps_the_multipath_tool_removes_or_creates_are_dropped_or_adopted() {
    let f = FakeSys::new();
    two_paths(&f, "sda", "sdb");
    let mut h = Harness::new(&f, GREEDY, DmState::default());
    h.owner.coldplug();
    h.calls();
    let minor = h.dm.lock().unwrap().maps["mpatha"].minor;

    // a remove event for a minor that is still ours changes nothing
    h.owner.on_uevent(dm_uevent("remove", "mpatha", minor));
    assert_eq!(h.owner.counts(), (2, 1));

    // the tool removes the map
    let table = h.dm.lock().unwrap().maps.remove("mpatha").unwrap().params;
    h.owner.on_uevent(dm_uevent("remove", "mpatha", minor));
    assert_eq!(h.owner.counts(), (2, 0));
    assert!(h.changes().is_empty(), "nothing made again");
    let rows = h.path_rows();
    for dev in ["sda", "sdb"] {
        assert_eq!(rows[dev][4], "undef", "dm state of an orphan: {:?}", rows[dev]);
    }

    // the tool creates it again: the change event of its resume
    let minor = h.dm.lock().unwrap().preload("mpatha", &format!("mpath-{WWID}"), &table);
    h.owner.on_uevent(dm_uevent("change", "mpatha", minor));
    assert_eq!(h.owner.counts(), (2, 1));
    assert!(h.changes().is_empty(), "adopted as it is");
    let rows = h.path_rows();
    for dev in ["sda", "sdb"] {
        assert_eq!(rows[dev][4], "active", "{:?}", rows[dev]);
    }
    // its own change events (and a second one) change nothing
    h.owner.on_uevent(dm_uevent("change", "mpatha", minor));
    assert_eq!(h.owner.counts(), (2, 1));
    assert!(h.changes().is_empty());
}

/// `multipathd -B`: a map is named by its binding when the file has one, else by its WWID,
/// and the bindings file is never written.
#[test]
fn bindings_read_only_uses_existing_bindings_and_adds_none() {
    let f = FakeSys::new();
    two_paths(&f, "sda", "sdb");
    let env = Env {
        bindings_read_only: true,
        ..f.env()
    };
    let mut h = Harness::with_env(env.clone(), GREEDY, DmState::default(), None);
    h.owner.coldplug();
    assert_eq!(creates(h.changes())[0].0, WWID);
    assert_eq!(f.bindings(), "");

    let f = FakeSys::new();
    two_paths(&f, "sda", "sdb");
    let text = format!("mpathc {WWID}\n");
    fs::write(f.state().join("bindings"), &text).unwrap();
    let env = Env {
        bindings_read_only: true,
        ..f.env()
    };
    let mut h = Harness::with_env(env, GREEDY, DmState::default(), None);
    h.owner.coldplug();
    assert_eq!(creates(h.changes())[0].0, "mpathc");
    assert_eq!(f.bindings(), text);
}

// ---- persistent reservations -------------------------------------------------

const PR_KEY: &str = "defaults {\n user_friendly_names yes\n find_multipaths greedy\n reservation_key 0x123abc\n}\n";

/// Per device, the registration the last `Schedule` since the previous call asks
/// for: (key, aptpl, unset, ever_registered), or None for a check without one.
type PrAsk = Option<(u64, bool, bool, bool)>;

/// What the checks scheduled since the last look ask for, by device (`ids`: device →
/// checker id, to name the paths sent again with the request the loop has).
fn pr_asks(h: &Harness, ids: &BTreeMap<String, u64>) -> BTreeMap<String, PrAsk> {
    h.controls()
        .into_iter()
        .filter_map(|c| match c {
            Control::Schedule { req, .. } => Some((
                req.dev.file_name().unwrap().to_string_lossy().into_owned(),
                req.pr.map(|j| (j.key, j.aptpl, j.unset, j.ever_registered)),
            )),
            // The request the loop has: its registration was taken when its check started.
            Control::Again { path, .. } => {
                let dev = ids.iter().find(|(_, id)| **id == path).expect("a known path").0;
                Some((dev.clone(), None))
            }
            _ => None,
        })
        .collect()
}

fn ids_and_asks(h: &Harness) -> (BTreeMap<String, u64>, BTreeMap<String, PrAsk>) {
    let mut ids = BTreeMap::new();
    let mut asks = BTreeMap::new();
    for c in h.controls() {
        if let Control::Schedule { req, .. } = c {
            let dev = req.dev.file_name().unwrap().to_string_lossy().into_owned();
            ids.insert(dev.clone(), req.path);
            asks.insert(dev, req.pr.map(|j| (j.key, j.aptpl, j.unset, j.ever_registered)));
        }
    }
    (ids, asks)
}

fn pr_check(h: &mut Harness, id: u64, state: PathState, pr: Option<PrOutcome>) {
    h.owner.on_check(CheckOutcome {
        path_id: id,
        result: Verdict::new(state, ""),
        prio: None,
        pr,
        took: Duration::from_millis(1),
    });
}

fn prstatus(h: &mut Harness) -> String {
    h.cmd(Command::GetPrStatus { map: "mpatha".into() })
}

const FIRST: PrAsk = Some((0x123abc, false, false, false));
const AGAIN: PrAsk = Some((0x123abc, false, false, true));

/// Upstream registers the key on every path of a map it creates, when the key is
/// already on the LUN: here each path's first usable check carries the registration,
/// and nothing is asked of a map without a key.
#[test]
fn a_new_map_with_a_key_registers_its_paths_at_their_first_check() {
    let f = FakeSys::new();
    two_paths(&f, "sda", "sdb");
    let mut plain = Harness::new(&f, GREEDY, DmState::default());
    plain.owner.coldplug();
    assert_eq!(
        pr_asks(&plain, &BTreeMap::new()),
        BTreeMap::from([("sda".into(), None), ("sdb".into(), None)])
    );
    let mut h = Harness::new(&f, PR_KEY, DmState::default());
    h.owner.coldplug();
    let (ids, asks) = ids_and_asks(&h);
    assert_eq!(asks, BTreeMap::from([("sda".into(), FIRST), ("sdb".into(), FIRST)]));

    // The first path finds the key registered and registers it: the map is set,
    // and its next check asks nothing more.
    assert_eq!(prstatus(&mut h), "unknown\n");
    pr_check(
        &mut h,
        ids["sda"],
        PathState::Up,
        Some(PrOutcome::Registered { keys: 2, hold: None }),
    );
    assert_eq!(prstatus(&mut h), "set\n");
    let asks = pr_asks(&h, &ids);
    assert_eq!(asks["sda"], None);
    // The map just became registered: its other usable paths register (sdb has not
    // been checked yet, so it still waits for its first check's registration).
    assert_eq!(asks.get("sdb"), None);
    pr_check(
        &mut h,
        ids["sdb"],
        PathState::Up,
        Some(PrOutcome::Registered { keys: 2, hold: None }),
    );
    assert_eq!(pr_asks(&h, &ids), BTreeMap::from([("sdb".into(), None)]));
}

/// `mpatha` over sda and sdb with `PR_KEY`, both paths checked up and registered; the
/// checker messages so far taken.
fn registered_pair(f: &FakeSys) -> (Harness, BTreeMap<String, u64>) {
    two_paths(f, "sda", "sdb");
    let mut h = Harness::new(f, PR_KEY, DmState::default());
    h.owner.coldplug();
    let ids = h.scheduled();
    pr_check(
        &mut h,
        ids["sda"],
        PathState::Up,
        Some(PrOutcome::Registered { keys: 1, hold: None }),
    );
    pr_check(
        &mut h,
        ids["sdb"],
        PathState::Up,
        Some(PrOutcome::Registered { keys: 2, hold: None }),
    );
    h.controls();
    (h, ids)
}

/// A path that failed registers again when it comes back, and the registration's
/// result arrives with the check that reinstates it (registered first, as upstream).
#[test]
fn a_path_that_comes_back_registers_before_it_is_reinstated() {
    let f = FakeSys::new();
    let (mut h, ids) = registered_pair(&f);
    h.calls();
    pr_check(&mut h, ids["sdb"], PathState::Down, None);
    assert_eq!(h.changes(), vec![msg("mpatha", "fail_path 8:16")]);
    assert_eq!(pr_asks(&h, &ids), BTreeMap::from([("sdb".into(), AGAIN)]));
    // Still down: it keeps asking.
    pr_check(&mut h, ids["sdb"], PathState::Down, None);
    assert_eq!(pr_asks(&h, &ids), BTreeMap::from([("sdb".into(), AGAIN)]));
    pr_check(
        &mut h,
        ids["sdb"],
        PathState::Up,
        Some(PrOutcome::Registered { keys: 2, hold: None }),
    );
    assert_eq!(h.changes(), vec![msg("mpatha", "reinstate_path 8:16")]);
    assert_eq!(pr_asks(&h, &ids), BTreeMap::from([("sdb".into(), None)]));
    assert_eq!(prstatus(&mut h), "set\n");
}

/// A key not on the LUN leaves the map unregistered, and nothing is asked until
/// mpathpersist says it registered (`setprstatus`): then every usable path registers
/// at once. After `unsetprstatus`, a path that comes back only has its registration
/// cleared.
#[test]
fn setprstatus_registers_every_usable_path_and_unsetprstatus_clears() {
    let f = FakeSys::new();
    two_paths(&f, "sda", "sdb");
    let mut h = Harness::new(&f, PR_KEY, DmState::default());
    h.owner.coldplug();
    let ids = h.scheduled();
    let none = Some(PrOutcome::NotRegistered { cleared: false });
    pr_check(&mut h, ids["sda"], PathState::Up, none);
    pr_check(&mut h, ids["sdb"], PathState::Up, none);
    assert_eq!(prstatus(&mut h), "unset\n");
    h.controls();
    pr_check(&mut h, ids["sdb"], PathState::Down, None);
    pr_check(&mut h, ids["sdb"], PathState::Up, None);
    assert_eq!(
        pr_asks(&h, &ids),
        BTreeMap::from([("sdb".into(), None)]),
        "unset, never registered"
    );

    h.cmd(Command::SetPrStatus {
        map: "mpatha".into(),
        pathlist: None,
    });
    assert_eq!(prstatus(&mut h), "set\n");
    let at_once: Vec<(String, u32, PrAsk)> = h
        .controls()
        .into_iter()
        .filter_map(|c| match c {
            Control::Schedule { req, in_secs } => Some((
                req.dev.file_name().unwrap().to_string_lossy().into_owned(),
                in_secs,
                req.pr.map(|j| (j.key, j.aptpl, j.unset, j.ever_registered)),
            )),
            _ => None,
        })
        .collect();
    assert_eq!(at_once, vec![("sdb".into(), 0, AGAIN), ("sda".into(), 0, AGAIN)]);
    pr_check(
        &mut h,
        ids["sda"],
        PathState::Up,
        Some(PrOutcome::Registered { keys: 2, hold: None }),
    );
    pr_check(
        &mut h,
        ids["sdb"],
        PathState::Up,
        Some(PrOutcome::Registered { keys: 2, hold: None }),
    );

    h.cmd(Command::UnsetPrStatus { map: "mpatha".into() });
    assert_eq!(prstatus(&mut h), "unset\n");
    h.controls();
    pr_check(&mut h, ids["sda"], PathState::Down, None);
    assert_eq!(
        pr_asks(&h, &ids),
        BTreeMap::from([("sda".into(), Some((0x123abc, false, true, true)))])
    );
}

/// A registration that finds the key gone (preempted by another host) unsets the map;
/// a device without PR support too; a failed READ KEYS changes nothing.
#[test]
fn a_registration_that_finds_the_key_gone_unsets_the_map() {
    let f = FakeSys::new();
    two_paths(&f, "sda", "sdb");
    let mut h = Harness::new(&f, PR_KEY, DmState::default());
    h.owner.coldplug();
    let ids = h.scheduled();
    pr_check(&mut h, ids["sda"], PathState::Up, Some(PrOutcome::ReadFailed));
    assert_eq!(prstatus(&mut h), "unknown\n");
    pr_check(
        &mut h,
        ids["sdb"],
        PathState::Up,
        Some(PrOutcome::Registered { keys: 2, hold: None }),
    );
    assert_eq!(prstatus(&mut h), "set\n");
    h.cmd(Command::SetPrHold { map: "mpatha".into() });
    pr_check(&mut h, ids["sda"], PathState::Down, None);
    pr_check(&mut h, ids["sda"], PathState::Up, Some(PrOutcome::Preempted));
    assert_eq!(prstatus(&mut h), "unset\n");
    assert_eq!(h.cmd(Command::GetPrHold { map: "mpatha".into() }), "unset\n");
}

/// Whether the map's key holds the reservation (`getprhold`, which mpathpersist asks
/// before it preempts or releases) is unknown until a path that finds the key
/// registered has read the reservation, as upstream's `check_prhold`; it is read once,
/// and what mpathpersist says with `setprhold`/`unsetprhold` is not read over.
#[test]
fn the_reservation_hold_is_unknown_until_a_registering_path_reads_it() {
    let f = FakeSys::new();
    two_paths(&f, "sda", "sdb");
    let mut h = Harness::new(&f, PR_KEY, DmState::default());
    h.owner.coldplug();
    let hold = |h: &mut Harness| h.cmd(Command::GetPrHold { map: "mpatha".into() });
    // Device -> (checker id, whether its registration reads the reservation), from the
    // checks scheduled since the last look.
    let schedules = |h: &Harness| -> BTreeMap<String, (u64, bool)> {
        h.controls()
            .into_iter()
            .filter_map(|c| match c {
                Control::Schedule { req, .. } => Some((
                    req.dev.file_name().unwrap().to_string_lossy().into_owned(),
                    (req.path, req.pr.is_some_and(|j| j.read_hold)),
                )),
                _ => None,
            })
            .collect()
    };
    let first = schedules(&h);
    assert!(first.values().all(|&(_, reads)| reads), "{first:?}");
    let ids: BTreeMap<String, u64> = first.iter().map(|(d, &(id, _))| (d.clone(), id)).collect();
    assert_eq!(hold(&mut h), "unknown\n");
    // A registration whose reservation read failed leaves it unknown.
    pr_check(
        &mut h,
        ids["sda"],
        PathState::Up,
        Some(PrOutcome::Registered { keys: 2, hold: None }),
    );
    assert_eq!(hold(&mut h), "unknown\n");
    pr_check(
        &mut h,
        ids["sdb"],
        PathState::Up,
        Some(PrOutcome::Registered {
            keys: 2,
            hold: Some(true),
        }),
    );
    assert_eq!(hold(&mut h), "set\n");
    // Known now: a path that comes back registers without reading it again.
    schedules(&h);
    pr_check(&mut h, ids["sdb"], PathState::Down, None);
    assert_eq!(schedules(&h), BTreeMap::from([("sdb".into(), (ids["sdb"], false))]));
    h.cmd(Command::UnsetPrHold { map: "mpatha".into() });
    pr_check(
        &mut h,
        ids["sdb"],
        PathState::Up,
        Some(PrOutcome::Registered {
            keys: 2,
            hold: Some(true),
        }),
    );
    assert_eq!(hold(&mut h), "unset\n", "mpathpersist's word stands");

    // A map without a key holds nothing.
    let f = FakeSys::new();
    two_paths(&f, "sda", "sdb");
    let mut plain = Harness::new(&f, GREEDY, DmState::default());
    plain.owner.coldplug();
    assert_eq!(plain.cmd(Command::GetPrHold { map: "mpatha".into() }), "unset\n");
}

/// A path added to a map that has its key registered registers it at its first check,
/// as upstream does when it adds a path.
#[test]
fn a_path_added_to_a_registered_map_registers_the_key() {
    let f = FakeSys::new();
    let (mut h, ids) = registered_pair(&f);
    f.add(&Disk {
        dev: "sdc",
        devt: (8, 32),
        host: 2,
        lun: 0,
        wwid: WWID,
        access_state: "active/optimized",
    });
    h.owner.on_uevent(scsi_uevent("add", "sdc", 2));
    let asks = pr_asks(&h, &ids);
    assert_eq!(asks["sdc"], AGAIN);
    assert_eq!(asks["sda"], None, "paths already in the map are not registered again");
}

/// Keys kept in the prkeys file.
const KEY_FILE_CONF: &str = "defaults {\n user_friendly_names yes\n find_multipaths greedy\n reservation_key file\n}\n";

/// `reservation_key file`: the key mpathpersist sets (`setprkey`) goes into the prkeys
/// file, so a daemon started later registers it too; `unsetprkey` forgets it there.
#[test]
fn a_key_from_setprkey_is_kept_in_the_prkeys_file() {
    let f = FakeSys::new();
    two_paths(&f, "sda", "sdb");
    let mut h = Harness::new(&f, KEY_FILE_CONF, DmState::default());
    h.owner.coldplug();
    let (ids, asks) = ids_and_asks(&h);
    assert_eq!(asks, BTreeMap::from([("sda".into(), None), ("sdb".into(), None)]));
    assert_eq!(h.cmd(Command::GetPrKey { map: "mpatha".into() }), "none\n");
    h.cmd(Command::SetPrKey {
        map: "mpatha".into(),
        key: "0x123ABC:aptpl".into(),
    });
    assert_eq!(h.cmd(Command::GetPrKey { map: "mpatha".into() }), "0x123abc:aptpl\n");
    let prkeys = f.state().join("prkeys");
    let text = fs::read_to_string(&prkeys).unwrap();
    assert!(text.ends_with(&format!("0X0000000000123abc {WWID}\n")), "{text}");
    // mpathpersist registered through the map and says so.
    h.cmd(Command::SetPrStatus {
        map: "mpatha".into(),
        pathlist: None,
    });
    pr_check(
        &mut h,
        ids["sda"],
        PathState::Up,
        Some(PrOutcome::Registered { keys: 2, hold: None }),
    );

    // A later daemon reads the key at map setup.
    let mut later = Harness::new(&f, KEY_FILE_CONF, DmState::default());
    later.owner.coldplug();
    let (_, asks) = ids_and_asks(&later);
    assert_eq!(asks["sda"], Some((0x123abc, true, false, false)));
    assert_eq!(
        later.cmd(Command::GetPrKey { map: "mpatha".into() }),
        "0x123abc:aptpl\n"
    );
    later.cmd(Command::UnsetPrKey { map: "mpatha".into() });
    assert_eq!(later.cmd(Command::GetPrKey { map: "mpatha".into() }), "none\n");
    let text = fs::read_to_string(&prkeys).unwrap();
    assert!(text.ends_with(&format!("#X0000000000123abc {WWID}\n")), "{text}");
}

/// As upstream selects the key at every map setup: a reconfigure reads the prkeys file
/// again (an admin's edit counts), and a key configured since replaces the file's.
#[test]
fn reconfigure_reads_the_prkeys_file_again_and_a_configured_key_replaces_it() {
    let f = FakeSys::new();
    two_paths(&f, "sda", "sdb");
    let mut h = Harness::new(&f, KEY_FILE_CONF, DmState::default());
    h.owner.coldplug();
    h.cmd(Command::SetPrKey {
        map: "mpatha".into(),
        key: "0x123abc".into(),
    });
    assert_eq!(h.cmd(Command::GetPrKey { map: "mpatha".into() }), "0x123abc\n");
    multipathd::discovery::prkeys::PrkeysFile::new(f.state().join("prkeys"))
        .set(WWID, Some((0x456, true)))
        .unwrap();
    h.owner.reconfigure(config(KEY_FILE_CONF));
    assert_eq!(h.cmd(Command::GetPrKey { map: "mpatha".into() }), "0x456:aptpl\n");
    h.owner.reconfigure(config(
        &KEY_FILE_CONF.replace("reservation_key file", "reservation_key 0x789"),
    ));
    assert_eq!(h.cmd(Command::GetPrKey { map: "mpatha".into() }), "0x789\n");
}

#[test]
fn a_steady_check_reads_its_maps_status_once_and_sends_nothing() {
    // Every check reads its map's status (an ioctl) before deciding; a path that
    // stays up leads to no DM message, so nothing can have changed the status since.
    let f = FakeSys::new();
    let mut h = Harness::coldplugged(&f, 4, 4);
    // The checker's id of sda, the first LUN's path through host 1 (ids count from 1).
    let sda = 1;
    h.calls();
    h.dm.lock().unwrap().status_reads = 0;
    h.check(sda, PathState::Up);
    assert_eq!(h.changes(), vec![]);
    assert_eq!(h.dm.lock().unwrap().status_reads, 1);
    // One that goes down sends fail_path and reads the status again after it.
    h.dm.lock().unwrap().status_reads = 0;
    h.check(sda, PathState::Down);
    assert_eq!(h.changes(), vec![msg(&common::lun_wwid(0), "fail_path 8:0")]);
    assert_eq!(h.dm.lock().unwrap().status_reads, 2);
}
