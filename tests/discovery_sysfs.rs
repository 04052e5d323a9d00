//! Path discovery against fake sysfs trees shaped like scsi_debug, FC, iSCSI and
//! NVMe devices.

use std::fs;
use std::os::unix::fs::symlink;

use multipathd::discovery::sysfs::{self, default_uid_attribute, multipath_holders, read_state, scan_paths};
use multipathd::discovery::{Bus, Hcil, PathInfo, ScanOptions, WwidSource, filter_blacklisted};

mod common;

use common::{FakeSys, scsi_debug};

// The scan as the daemon runs it, over the fake root.
impl FakeSys {
    fn scan(&self) -> multipathd::discovery::ScanResult {
        let udev = self.udev();
        scan_paths(
            &self.root(),
            &ScanOptions {
                udev_data_dir: &udev,
                uid_attribute: &default_uid_attribute,
            },
        )
    }
}

fn two_scsi_debug_paths(f: &FakeSys) {
    f.add_scsi(&scsi_debug("sda", (8, 0), 1, 0, "active/non-optimized"));
    f.add_scsi(&scsi_debug("sdb", (8, 16), 0, 0, "active/optimized"));
}

#[test]
fn scsi_debug_paths_with_udev_use_id_serial() {
    let f = FakeSys::new();
    two_scsi_debug_paths(&f);
    f.add_udev(
        (8, 0),
        &[("ID_SERIAL", "333333330000007d0"), ("ID_WWN", "0x33333330000007d0")],
    );
    f.add_udev((8, 16), &[("ID_SERIAL", "333333330000007d0")]);
    let r = f.scan();
    assert!(r.skipped.is_empty(), "{:?}", r.skipped);
    assert_eq!(r.paths.len(), 2);
    let b = &r.paths[1];
    assert_eq!(b.dev, "sdb");
    assert_eq!(b.devt, (8, 16));
    assert_eq!(b.bus, Bus::Scsi);
    assert_eq!(
        b.hcil,
        Hcil {
            host: 0,
            channel: 0,
            target: 0,
            lun: 0
        }
    );
    assert_eq!(
        (b.vendor.as_str(), b.product.as_str(), b.rev.as_str()),
        ("Linux", "scsi_debug", "0191")
    );
    assert_eq!(b.serial, "2000");
    assert_eq!(b.wwid.as_deref(), Some("333333330000007d0"));
    assert_eq!(b.wwid_source, Some(WwidSource::Udev("ID_SERIAL".into())));
    assert_eq!(b.protocol, "scsi:unspec");
    assert_eq!(b.tgt_node_name, "");
    assert_eq!(b.state, "running");
    assert_eq!(b.size, 32768);
    assert_eq!(b.access_state.as_deref(), Some("active/optimized"));
    assert_eq!(b.preferred_path, Some(false));
    assert_eq!(b.tpg, Some(0x100));
    assert_eq!(r.paths[0].tpg, Some(0x200));
    assert_eq!(r.paths[0].hcil.to_string(), "1:0:0:0");
    assert_eq!(r.paths[0].access_state.as_deref(), Some("active/non-optimized"));
    assert_eq!(
        r.paths[0].udev.as_ref().unwrap().get("ID_WWN"),
        Some("0x33333330000007d0")
    );
}

#[test]
fn without_udev_the_wwid_comes_from_vpd_83_by_multipath_priority() {
    // T10 vendor id outranks the NAA-3 locally assigned id in multipath-tools'
    // order, so scsi_debug's sysfs-derived WWID differs from udev's ID_SERIAL.
    let f = FakeSys::new();
    two_scsi_debug_paths(&f);
    let r = f.scan();
    for p in &r.paths {
        assert_eq!(p.wwid.as_deref(), Some("1Linux_scsi_debug_2000"));
        assert_eq!(p.wwid_source, Some(WwidSource::Vpd83));
        assert_eq!(p.udev, None);
    }
}

#[test]
fn empty_uid_attribute_means_sysfs_even_with_udev_data() {
    let f = FakeSys::new();
    two_scsi_debug_paths(&f);
    f.add_udev((8, 0), &[("ID_SERIAL", "333333330000007d0")]);
    let udev = f.udev();
    let none = |_: &PathInfo| String::new();
    let r = scan_paths(
        &f.root(),
        &ScanOptions {
            udev_data_dir: &udev,
            uid_attribute: &none,
        },
    );
    assert_eq!(r.paths[0].wwid.as_deref(), Some("1Linux_scsi_debug_2000"));
    let wwn = |_: &PathInfo| "ID_WWN".to_string();
    f.add_udev((8, 0), &[("ID_WWN", " 0x33333330000007d0 ")]);
    let r = scan_paths(
        &f.root(),
        &ScanOptions {
            udev_data_dir: &udev,
            uid_attribute: &wwn,
        },
    );
    assert_eq!(r.paths[0].wwid.as_deref(), Some("0x33333330000007d0"));
    assert_eq!(r.paths[0].wwid_source, Some(WwidSource::Udev("ID_WWN".into())));
    let long = "x".repeat(200);
    f.add_udev((8, 0), &[("ID_WWN", &long)]);
    let r = scan_paths(
        &f.root(),
        &ScanOptions {
            udev_data_dir: &udev,
            uid_attribute: &wwn,
        },
    );
    assert_eq!(r.paths[0].wwid.as_deref(), Some(&long[..127]));
}

#[test]
fn fc_iscsi_and_sas_transports() {
    let f = FakeSys::new();
    let mut d = scsi_debug("sdc", (8, 32), 3, 0, "standby");
    d.parent = "pci0000:00/0000:00:01.0/host3/rport-3:0-0/target3:0:0".into();
    d.hcil = "3:0:0:1".into();
    f.add_scsi(&d);
    f.write(
        &f.sys("class/fc_remote_ports/rport-3:0-0/node_name"),
        b"0x20000024ff123456\n",
    );
    let mut d = scsi_debug("sdd", (8, 48), 4, 0, "standby");
    d.parent = "platform/host4/session2/target4:0:0".into();
    d.hcil = "4:0:0:2".into();
    f.add_scsi(&d);
    f.write(
        &f.sys("class/iscsi_session/session2/targetname"),
        b"iqn.2003-01.org.linux-iscsi:t1\n",
    );
    let mut d = scsi_debug("sde", (8, 64), 5, 0, "standby");
    d.parent = "pci0000:00/0000:00:02.0/host5/port-5:0/end_device-5:0/target5:0:0".into();
    d.hcil = "5:0:0:0".into();
    f.add_scsi(&d);
    f.write(
        &f.sys("class/sas_device/end_device-5:0/sas_address"),
        b"0x5000c500a1b2c3d4\n",
    );
    let r = f.scan();
    assert!(r.skipped.is_empty(), "{:?}", r.skipped);
    let got: Vec<(&str, &str, String, Option<&str>)> = r
        .paths
        .iter()
        .map(|p| {
            (
                p.protocol.as_str(),
                p.tgt_node_name.as_str(),
                p.hcil.to_string(),
                p.transport.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (
                "scsi:fcp",
                "0x20000024ff123456",
                "3:0:0:1".to_string(),
                Some("rport-3:0-0")
            ),
            (
                "scsi:iscsi",
                "iqn.2003-01.org.linux-iscsi:t1",
                "4:0:0:2".to_string(),
                Some("session2")
            ),
            (
                "scsi:sas",
                "0x5000c500a1b2c3d4",
                "5:0:0:0".to_string(),
                Some("end_device-5:0")
            ),
        ]
    );
}

#[test]
fn odd_sysfs_content_skips_paths_with_reasons() {
    let f = FakeSys::new();
    two_scsi_debug_paths(&f);
    f.write(&f.sys("block/sda/dev"), b"garbage\n");
    fs::remove_file(f.sys("block/sdb/size")).unwrap();
    let mut d = scsi_debug("sdc", (8, 32), 2, 0, "standby");
    d.hcil = "not-an-hcil".into();
    f.add_scsi(&d);
    fs::create_dir_all(f.sys("block/loop0")).unwrap();
    fs::create_dir_all(f.sys("block/sdz")).unwrap(); // no attributes at all
    let r = f.scan();
    assert_eq!(r.paths, vec![]);
    let texts: Vec<String> = r.skipped.iter().map(|s| s.reason.to_string()).collect();
    let reasons: Vec<(&str, &str)> = r
        .skipped
        .iter()
        .zip(&texts)
        .map(|(s, t)| (s.dev.as_str(), t.as_str()))
        .collect();
    assert_eq!(reasons[0], ("loop0", "not a SCSI or NVMe disk"));
    assert_eq!(reasons[1], ("sda", "bad dev attribute \"garbage\""));
    assert_eq!(reasons[2].0, "sdb");
    assert!(
        reasons[2]
            .1
            .ends_with("sys/block/sdb/size: No such file or directory (os error 2)"),
        "{}",
        reasons[2].1
    );
    assert_eq!(reasons[3], ("sdc", "device link target \"not-an-hcil\" is not H:C:T:L"));
    assert_eq!(reasons[4].0, "sdz");
    assert!(reasons[4].1.contains("sys/block/sdz/dev"), "{}", reasons[4].1);
}

#[test]
fn missing_vendor_and_bad_vpd_keep_the_path_without_wwid() {
    let f = FakeSys::new();
    let mut d = scsi_debug("sdb", (8, 16), 0, 0, "active/optimized");
    d.vendor = None;
    d.pg83 = Some(vec![0x00, 0x83, 0x00, 0x08, 0x01, 0x03, 0x00, 0x30, 0x60, 0, 0, 0]);
    d.pg80 = Some(vec![0xff]);
    d.preferred = Some("yes?".into());
    f.add_scsi(&d);
    f.add_udev((8, 16), &[("ID_VENDOR", "Linux")]);
    let r = f.scan();
    let p = &r.paths[0];
    assert_eq!(p.vendor, "UNKNOWN");
    assert_eq!(p.serial, "");
    assert_eq!(p.preferred_path, None);
    assert_eq!(p.wwid, None);
    assert_eq!(
        p.wwid_error.as_deref(),
        Some(
            "no udev property ID_SERIAL; sysfs fallback failed: vpd_pg83: designator at offset 4 ends at 56, beyond the page length 12"
        )
    );
}

#[test]
fn nvme_namespace() {
    let f = FakeSys::new();
    let ctrl = f.sys("devices/pci0000:00/0000:00:04.0/nvme/nvme0");
    f.write(&ctrl.join("model"), b"Samsung SSD 980                         \n");
    f.write(&ctrl.join("serial"), b"S64DNX0R123456  \n");
    f.write(&ctrl.join("firmware_rev"), b"1B4QFXO7\n");
    f.write(&ctrl.join("transport"), b"tcp\n");
    f.write(&ctrl.join("cntlid"), b"4\n");
    f.write(&ctrl.join("state"), b"live\n");
    let block = f.sys("block/nvme0n1");
    f.write(&block.join("dev"), b"259:0\n");
    f.write(&block.join("size"), b"1000215216\n");
    f.write(&block.join("nsid"), b"1\n");
    f.write(&block.join("wwid"), b"eui.0025385a91b12345\n");
    symlink(&ctrl, block.join("device")).unwrap();
    let r = f.scan();
    let p = &r.paths[0];
    assert_eq!(p.bus, Bus::Nvme);
    assert_eq!(
        p.hcil,
        Hcil {
            host: 0,
            channel: 4,
            target: 1,
            lun: 1
        }
    );
    assert_eq!((p.vendor.as_str(), p.product.as_str()), ("NVME", "Samsung SSD 980"));
    assert_eq!((p.serial.as_str(), p.rev.as_str()), ("S64DNX0R123456", "1B4QFXO7"));
    assert_eq!(p.protocol, "nvme:tcp");
    assert_eq!(p.state, "live");
    assert_eq!(p.wwid.as_deref(), Some("eui.0025385a91b12345"));
    assert_eq!(p.wwid_source, Some(WwidSource::SysfsWwid));
    f.add_udev((259, 0), &[("ID_WWN", "eui.0025385a91b12345")]);
    let r = f.scan();
    assert_eq!(r.paths[0].wwid_source, Some(WwidSource::Udev("ID_WWN".into())));
}

#[test]
fn blacklist_predicate_and_state_reads() {
    let f = FakeSys::new();
    two_scsi_debug_paths(&f);
    let r = f.scan();
    let (kept, dropped) = filter_blacklisted(r.paths, &|p: &PathInfo| p.dev == "sda");
    assert_eq!(kept.iter().map(|p| p.dev.as_str()).collect::<Vec<_>>(), vec!["sdb"]);
    assert_eq!(dropped.iter().map(|p| p.dev.as_str()).collect::<Vec<_>>(), vec!["sda"]);
    assert_eq!(read_state(&f.root(), "sdb").unwrap(), "running");
    fs::write(
        f.sys("devices/pseudo_0/adapter0/host0/target0:0:0/0:0:0:0/state"),
        "offline\n",
    )
    .unwrap();
    assert_eq!(read_state(&f.root(), "sdb").unwrap(), "offline");
    assert!(read_state(&f.root(), "../sdb").is_err());
    let udev = f.udev();
    let one = sysfs::path_info(
        &f.root(),
        "sdb",
        &ScanOptions {
            udev_data_dir: &udev,
            uid_attribute: &default_uid_attribute,
        },
    )
    .unwrap();
    assert_eq!(one.state, "offline");
}

#[test]
fn multipath_holders_are_found_by_dm_uuid() {
    let f = FakeSys::new();
    two_scsi_debug_paths(&f);
    assert_eq!(multipath_holders(&f.root(), "sdb"), Vec::<String>::new());
    let dm0 = f.sys("devices/virtual/block/dm-0");
    f.write(&dm0.join("dm/uuid"), b"mpath-333333330000007d0\n");
    f.write(&dm0.join("dm/name"), b"mpatha\n");
    let dm1 = f.sys("devices/virtual/block/dm-1");
    f.write(&dm1.join("dm/uuid"), b"LVM-abcdef\n");
    fs::create_dir_all(f.sys("block/sdb/holders")).unwrap();
    symlink(&dm0, f.sys("block/sdb/holders/dm-0")).unwrap();
    symlink(&dm1, f.sys("block/sdb/holders/dm-1")).unwrap();
    assert_eq!(multipath_holders(&f.root(), "sdb"), vec!["mpatha".to_string()]);
    assert_eq!(multipath_holders(&f.root(), "sda"), Vec::<String>::new());
    assert_eq!(multipath_holders(&f.root(), ".."), Vec::<String>::new());
}

#[test]
fn getprio_reads_current_sysfs_state() {
    use multipathd::discovery::prio::{Prio, PrioEnv, Subject, getprio};
    let f = FakeSys::new();
    two_scsi_debug_paths(&f);
    let r = f.scan();
    let sdb = r.paths.iter().find(|p| p.dev == "sdb").unwrap().clone();
    let mut n = 0u32;
    let mut rng = || {
        n += 3;
        n
    };
    let re = |re: &str, s: &str| Some(s.contains(re));
    let dev_dir = f.dir.path().join("dev");
    let root = f.root();
    let mut env = PrioEnv {
        root: &root,
        dev_dir: &dev_dir,
        timeout_ms: 1000,
        rng: &mut rng,
        regex_search: &re,
        attrs: None,
    };
    assert_eq!(getprio(Prio::Const, "", &Subject::from(&sdb), &mut env).ok(), Some(1));
    assert_eq!(getprio(Prio::Random, "", &Subject::from(&sdb), &mut env).ok(), Some(4));
    assert_eq!(getprio(Prio::Sysfs, "", &Subject::from(&sdb), &mut env).ok(), Some(50));
    let devdir = f.sys("devices/pseudo_0/adapter0/host0/target0:0:0/0:0:0:0");
    fs::write(devdir.join("access_state"), "standby\n").unwrap();
    fs::write(devdir.join("preferred_path"), "1\n").unwrap();
    assert_eq!(getprio(Prio::Sysfs, "", &Subject::from(&sdb), &mut env).ok(), Some(81));
    fs::remove_file(devdir.join("access_state")).unwrap();
    assert_eq!(
        getprio(Prio::Sysfs, "", &Subject::from(&sdb), &mut env)
            .unwrap_err()
            .to_string(),
        "sdb: no access_state in sysfs"
    );
    assert_eq!(
        getprio(
            Prio::Weightedpath,
            "hbtl 1:0 5 0:0:0:0 9",
            &Subject::from(&sdb),
            &mut env
        )
        .ok(),
        Some(9)
    );
    assert_eq!(
        getprio(Prio::Weightedpath, "wwn . 9", &Subject::from(&sdb), &mut env).ok(),
        Some(0)
    );
    let e = getprio(Prio::Alua, "", &Subject::from(&sdb), &mut env)
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("sdb: alua: ") && e.ends_with("dev/sdb: No such file or directory (os error 2)"),
        "{e}"
    );
    assert!(getprio(Prio::PathLatency, "", &Subject::from(&sdb), &mut env).is_err());
}

#[test]
fn fc_wwn_for_weightedpath() {
    use multipathd::discovery::prio::fc_wwn;
    let f = FakeSys::new();
    let h = Hcil {
        host: 3,
        channel: 0,
        target: 1,
        lun: 0,
    };
    assert_eq!(fc_wwn(&f.root(), &h), None);
    f.write(&f.sys("class/fc_host/host3/node_name"), b"0x2000001b32800001\n");
    f.write(&f.sys("class/fc_host/host3/port_name"), b"0x2100001b32800001\n");
    f.write(
        &f.sys("class/fc_transport/target3:0:1/node_name"),
        b"0x500a098000000001\n",
    );
    f.write(
        &f.sys("class/fc_transport/target3:0:1/port_name"),
        b"0x500a098100000001\n",
    );
    assert_eq!(
        fc_wwn(&f.root(), &h).as_deref(),
        Some("0x2000001b32800001:0x2100001b32800001:0x500a098000000001:0x500a098100000001")
    );
}

#[test]
fn device_in_use_by_holders_mounts_and_swap() {
    use multipathd::discovery::sysfs::device_in_use;
    let f = FakeSys::new();
    two_scsi_debug_paths(&f);
    let mountinfo = "22 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw\n\
                     40 22 8:1 / /data rw - xfs /dev/sda1 rw,attr2\n";
    let swaps = "Filename\tType\tSize\tUsed\tPriority\n/dev/sdb2 partition 1020 0 -2\n";
    assert!(!device_in_use(&f.root(), "sda", mountinfo, swaps));
    f.write(&f.sys("block/sda/sda1/partition"), b"1\n");
    assert!(device_in_use(&f.root(), "sda", mountinfo, swaps));
    assert!(!device_in_use(&f.root(), "sda", "", swaps));
    f.write(&f.sys("block/sdb/sdb2/partition"), b"2\n");
    assert!(device_in_use(&f.root(), "sdb", "", swaps));
    assert!(!device_in_use(&f.root(), "sdb", "", ""));
    fs::create_dir_all(f.sys("block/sdb/sdb2/holders/dm-3")).unwrap();
    assert!(device_in_use(&f.root(), "sdb", "", ""));
    fs::create_dir_all(f.sys("block/sda/holders")).unwrap();
    assert!(!device_in_use(&f.root(), "sda", "", ""));
    assert!(!device_in_use(&f.root(), "../sda", mountinfo, swaps));
}
