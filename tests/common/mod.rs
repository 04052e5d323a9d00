//! The fake system root the integration tests build: a tempdir holding `sys/`,
//! `run/udev/data`, `dev/` and `etc/multipath`, with SCSI disks shaped like the
//! lab VM's scsi_debug LUNs.

#![allow(dead_code)] // each test crate uses a different part of this module

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use multipathd::config::LoadOptions;
use multipathd::daemon::owner::Env;
use multipathd::discovery::SysfsRoot;
use multipathd::uevent::Uevent;

pub mod daemon;
pub mod dm;

pub struct FakeSys {
    pub dir: tempfile::TempDir,
}

/// One SCSI disk: its sysfs block directory and SCSI device directory.
pub struct ScsiDisk {
    pub dev: String,
    pub devt: (u32, u32),
    /// Ancestry of the SCSI device below sys/devices, ending in the target dir.
    pub parent: String,
    /// Name of the SCSI device dir, normally H:C:T:L.
    pub hcil: String,
    pub vendor: Option<String>,
    pub model: String,
    pub pg83: Option<Vec<u8>>,
    pub pg80: Option<Vec<u8>>,
    pub access_state: Option<String>,
    pub preferred: Option<String>,
    /// Further attribute files of the SCSI device, as name and content.
    pub attrs: Vec<(&'static str, &'static str)>,
}

impl FakeSys {
    pub fn new() -> Self {
        let f = FakeSys {
            dir: tempfile::tempdir().unwrap(),
        };
        for d in [f.sys("block"), f.udev(), f.dev(), f.state()] {
            fs::create_dir_all(d).unwrap();
        }
        f
    }
    pub fn sys(&self, rel: &str) -> PathBuf {
        self.dir.path().join("sys").join(rel)
    }
    pub fn udev(&self) -> PathBuf {
        self.dir.path().join("run/udev/data")
    }
    pub fn dev(&self) -> PathBuf {
        self.dir.path().join("dev")
    }
    pub fn state(&self) -> PathBuf {
        self.dir.path().join("etc/multipath")
    }
    pub fn root(&self) -> SysfsRoot {
        SysfsRoot::new(self.dir.path())
    }
    pub fn write(&self, path: &Path, content: &[u8]) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, content).unwrap();
    }

    /// The disk's SCSI device dir with its attributes, and its block dir
    /// ([`SECTORS`] long) linking to it.
    pub fn add_scsi(&self, d: &ScsiDisk) {
        let devdir = self.sys("devices").join(&d.parent).join(&d.hcil);
        fs::create_dir_all(&devdir).unwrap();
        if let Some(v) = &d.vendor {
            self.write(&devdir.join("vendor"), format!("{v:<8}\n").as_bytes());
        }
        self.write(&devdir.join("model"), format!("{:<16}\n", d.model).as_bytes());
        self.write(&devdir.join("rev"), b"0191\n");
        self.write(&devdir.join("state"), b"running\n");
        if let Some(p) = &d.pg83 {
            self.write(&devdir.join("vpd_pg83"), p);
        }
        if let Some(p) = &d.pg80 {
            self.write(&devdir.join("vpd_pg80"), p);
        }
        if let Some(a) = &d.access_state {
            self.write(&devdir.join("access_state"), format!("{a}\n").as_bytes());
        }
        if let Some(p) = &d.preferred {
            self.write(&devdir.join("preferred_path"), format!("{p}\n").as_bytes());
        }
        for (name, content) in &d.attrs {
            self.write(&devdir.join(name), content.as_bytes());
        }
        let block = self.sys("block").join(&d.dev);
        fs::create_dir_all(&block).unwrap();
        self.write(&block.join("dev"), format!("{}:{}\n", d.devt.0, d.devt.1).as_bytes());
        self.write(&block.join("size"), format!("{SECTORS}\n").as_bytes());
        symlink(&devdir, block.join("device")).unwrap();
    }

    /// What the state owner reads of this system: sysfs, udev, /dev, its state
    /// directory and [`FakeSys::conf`].
    pub fn env(&self) -> Env {
        Env {
            sysfs: self.root(),
            udev_dir: self.udev(),
            dev_dir: self.dev(),
            state_dir: self.state(),
            bindings_read_only: false,
            config: LoadOptions {
                path: self.conf(),
                conf_dir: self.state().join("conf.d"),
            },
            verbosity: None,
        }
    }

    /// The multipath.conf `reconfigure` reads.
    pub fn conf(&self) -> PathBuf {
        self.state().join("multipath.conf")
    }

    /// `luns` scsi_debug LUNs ([`lun_wwid`]), each through `hosts` hosts (all paths
    /// active/optimized): disk `lun * hosts + host` is [`sd_name`] of that index,
    /// 8:(16 times it).
    pub fn add_luns(&self, luns: u32, hosts: u32) {
        for lun in 0..luns {
            for host in 0..hosts {
                self.add_lun_path(lun, host, hosts);
            }
        }
    }

    /// One disk of [`FakeSys::add_luns`]: LUN `lun` through host `host + 1`, the
    /// LUNs having `hosts` paths each. Gives its name and dev_t.
    pub fn add_lun_path(&self, lun: u32, host: u32, hosts: u32) -> (String, (u32, u32)) {
        let wwid = lun_wwid(lun);
        let wwn = format!("0x{}", &wwid[1..]);
        let i = lun * hosts + host;
        let devt = (8, i * 16);
        let mut disk = scsi_debug(&sd_name(i as usize), devt, host + 1, lun, "active/optimized");
        disk.attrs = vec![("timeout", "30\n")];
        self.add_scsi(&disk);
        self.add_udev(devt, &[("ID_SERIAL", &wwid), ("ID_WWN", &wwn), ("ID_BUS", "scsi")]);
        (disk.dev, devt)
    }

    /// What the kernel removes when a disk goes away: its block dir and udev record.
    pub fn remove(&self, dev: &str, devt: (u32, u32)) {
        fs::remove_dir_all(self.sys("block").join(dev)).unwrap();
        fs::remove_file(self.udev().join(format!("b{}:{}", devt.0, devt.1))).unwrap();
    }

    /// The udev database record of a block device, with these properties.
    pub fn add_udev(&self, devt: (u32, u32), props: &[(&str, &str)]) {
        let mut s = String::from("I:1\n");
        for (k, v) in props {
            s.push_str(&format!("E:{k}={v}\n"));
        }
        self.write(&self.udev().join(format!("b{}:{}", devt.0, devt.1)), s.as_bytes());
    }
}

/// A uevent with these properties, as the uevent reader parses them.
pub fn uevent(props: &[(&str, &str)]) -> Uevent {
    Uevent::from_env(props.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()).unwrap()
}

/// A scsi_debug disk's uevent, as the kernel sends it for `action` (add, change, remove).
pub fn scsi_uevent(action: &str, dev: &str, host: u32) -> Uevent {
    uevent(&[
        ("ACTION", action),
        (
            "DEVPATH",
            &format!("/devices/pseudo_0/adapter{host}/host{host}/target{host}:0:0/{host}:0:0:0/block/{dev}"),
        ),
        ("SUBSYSTEM", "block"),
        ("DEVNAME", &format!("/dev/{dev}")),
        ("DEVTYPE", "disk"),
    ])
}

/// The WWID of [`FakeSys::add_luns`]'s LUN `lun`.
pub fn lun_wwid(lun: u32) -> String {
    format!("3600a0980{lun:023x}")
}

/// Size of every fake disk, in 512-byte sectors.
pub const SECTORS: u64 = 32768;

/// A scsi_debug LUN as the lab VM shows it through `host` (which sets the target
/// port group in VPD page 0x83) with the given ALUA `access_state`.
pub fn scsi_debug(dev: &str, devt: (u32, u32), host: u32, lun: u32, access_state: &str) -> ScsiDisk {
    ScsiDisk {
        dev: dev.to_string(),
        devt,
        parent: format!("pseudo_0/adapter{host}/host{host}/target{host}:0:0"),
        hcil: format!("{host}:0:0:{lun}"),
        vendor: Some("Linux".to_string()),
        model: "scsi_debug".to_string(),
        pg83: Some(scsi_debug_pg83(host as u8 + 1)),
        pg80: Some(pg80("2000")),
        access_state: Some(access_state.to_string()),
        preferred: Some("0".to_string()),
        attrs: vec![],
    }
}

/// VPD page 0x83 of scsi_debug (Linux 6.1, `vpd_use_hostno=0`) as read from
/// sysfs in the lab VM: T10 vendor id, NAA-3 LU id, then relative port, target
/// port, target port group (byte 75 = host + 1) and target device designators.
pub fn scsi_debug_pg83(port_group_hi: u8) -> Vec<u8> {
    let mut p = vec![
        0x00, 0x83, 0x00, 0x70, 0x02, 0x01, 0x00, 0x1c, 0x4c, 0x69, 0x6e, 0x75, 0x78, 0x20, 0x20, 0x20, //
        0x73, 0x63, 0x73, 0x69, 0x5f, 0x64, 0x65, 0x62, 0x75, 0x67, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, //
        0x32, 0x30, 0x30, 0x30, 0x01, 0x03, 0x00, 0x08, 0x33, 0x33, 0x33, 0x30, 0x00, 0x00, 0x07, 0xd0, //
        0x61, 0x94, 0x00, 0x04, 0x00, 0x00, 0x00, 0x01, 0x61, 0x93, 0x00, 0x08, 0x32, 0x22, 0x22, 0x20, //
        0x00, 0x00, 0x07, 0xce, 0x61, 0x95, 0x00, 0x04, 0x00, 0x00, 0x01, 0x00, 0x61, 0xa3, 0x00, 0x08, //
        0x32, 0x22, 0x22, 0x20, 0x00, 0x00, 0x07, 0xcd, 0x63, 0xa8, 0x00, 0x18, 0x6e, 0x61, 0x61, 0x2e, //
        0x33, 0x32, 0x32, 0x32, 0x32, 0x32, 0x32, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30, 0x37, 0x43, 0x44, //
        0x00, 0x00, 0x00, 0x00,
    ];
    p[74] = port_group_hi;
    p
}

/// VPD page 0x80 (unit serial number) holding `s`.
pub fn pg80(s: &str) -> Vec<u8> {
    let mut p = vec![0x00, 0x80, 0x00, s.len() as u8];
    p.extend_from_slice(s.as_bytes());
    p
}

/// Kernel-style SCSI disk name for index `i`: sda … sdz, sdaa … sdzz, sdaaa ….
pub fn sd_name(mut i: usize) -> String {
    let mut letters = Vec::new();
    loop {
        letters.push(b'a' + (i % 26) as u8);
        if i < 26 {
            break;
        }
        i = i / 26 - 1;
    }
    letters.reverse();
    format!("sd{}", String::from_utf8_lossy(&letters))
}
