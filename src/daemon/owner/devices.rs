//! The block devices `show devices` lists. The owner reads them from sysfs at
//! coldplug and on reconfigure, and after uevents that add or remove a block device
//! looks again at those devices' entries only (a uevent storm at thousands of paths
//! would otherwise read all of `/sys/block` once per batch); it publishes their
//! statuses with the views: a user looping `show devices` costs the daemon no sysfs IO.

use std::cmp::Ordering;
use std::sync::Arc;

use crate::cli::format::DeviceStatus;
use crate::config::Config;
use crate::config::blacklist::Blacklist;
use crate::discovery::SysfsRoot;
use crate::uevent::Uevent;

use super::Owner;

/// What sysfs said about the block devices at the last look.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct BlockDevices {
    /// Entries of `/sys/block`, in udev's enumeration order (`udev_cmp`).
    entries: Vec<Listed>,
    /// Native NVMe multipath is on (the devnode blacklist then keeps its namespaces).
    native_nvme: bool,
}

/// One entry of `/sys/block`.
#[derive(Debug, PartialEq, Eq)]
struct Listed {
    /// (shared with the published `show devices` view, which is made again whenever a
    /// path or device comes or goes: thousands of names, not copied each time)
    name: Arc<str>,
    /// The entry's link target, the device's path in sysfs.
    devpath: String,
    /// The devnode blacklist's verdict under the configuration of the last look (every
    /// entry is looked at again when the configuration changes): made once per device,
    /// not once per `show devices` view at thousands of devices.
    blacklisted: bool,
}

impl Listed {
    fn new(name: &str, devpath: String, bl: &Blacklist) -> Listed {
        Listed {
            name: name.into(),
            devpath,
            blacklisted: bl.filter_devnode(name) > 0,
        }
    }
}

impl BlockDevices {
    fn read(sysfs: &SysfsRoot, cfg: &Config) -> BlockDevices {
        let native_nvme =
            std::fs::read_to_string(sysfs.sys("module/nvme_core/parameters/multipath")).is_ok_and(|s| s.trim() == "Y");
        let bl = Blacklist::new(cfg, native_nvme);
        let mut entries: Vec<Listed> = std::fs::read_dir(sysfs.sys("block"))
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| {
                        let name = e.file_name().to_string_lossy().into_owned();
                        let devpath = std::fs::read_link(e.path())
                            .map_or_else(|_| name.clone(), |t| t.to_string_lossy().into_owned());
                        Listed::new(&name, devpath, &bl)
                    })
                    .collect()
            })
            .unwrap_or_default();
        entries.sort_by(udev_cmp);
        BlockDevices { entries, native_nvme }
    }

    /// Looks at `/sys/block/NAME` again for each of `names`: the entry is added, moved
    /// or dropped as sysfs now has it, as a full [`BlockDevices::read`] would (`bl`:
    /// the devnode blacklist of the configuration it was made with). True if anything
    /// changed.
    fn update<'a>(&mut self, sysfs: &SysfsRoot, bl: &Blacklist, names: impl IntoIterator<Item = &'a str>) -> bool {
        let mut changed = false;
        for name in names {
            if name.is_empty() || name == "." || name == ".." {
                continue;
            }
            let devpath = match std::fs::read_link(sysfs.sys("block").join(name)) {
                Ok(t) => Some(t.to_string_lossy().into_owned()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                // there but no link (not so in the kernel's sysfs): named by itself
                Err(_) => Some(name.to_string()),
            };
            let was = self.entries.iter().position(|e| &*e.name == name);
            if was.map(|i| &self.entries[i].devpath) == devpath.as_ref() {
                continue;
            }
            if let Some(i) = was {
                self.entries.remove(i);
            }
            if let Some(devpath) = devpath {
                let e = Listed::new(name, devpath, bl);
                let at = self.entries.partition_point(|x| udev_cmp(x, &e) == Ordering::Less);
                self.entries.insert(at, e);
            }
            changed = true;
        }
        changed
    }
}

/// Upstream lists what libudev enumerates, and libudev sorts by device path (the
/// `/sys/block/NAME` link's target) with device-mapper and md devices last, as they stack
/// on the others.
fn udev_cmp(a: &Listed, b: &Listed) -> Ordering {
    let stacked = |n: &str| n.starts_with("dm-") || n.starts_with("md");
    (stacked(&a.name), &a.devpath).cmp(&(stacked(&b.name), &b.devpath))
}

/// The `/sys/block` entry the uevent names, if it adds or removes a block device (the
/// listing may change): the device path's last part, which is the entry's name (a
/// partition's names no entry, and is looked up in vain).
pub(super) fn block_device_named(ev: &Uevent) -> Option<&str> {
    let adds_or_removes = ev.subsystem.as_deref() == Some("block") && matches!(ev.action.as_str(), "add" | "remove");
    adds_or_removes.then(|| ev.devpath.rsplit('/').next().unwrap_or_default())
}

impl Owner {
    /// Reads the block devices again; counts a new generation if they changed.
    pub(super) fn reread_block_devices(&mut self) {
        let now = BlockDevices::read(&self.env.sysfs, &self.cfg);
        if now != self.block_devices {
            self.block_devices = now;
            self.block_devices_generation += 1;
        }
    }

    /// Looks again at the named block devices only (those a uevent batch added or
    /// removed; `bl` is the batch's devnode blacklist); counts a new generation if the
    /// listing changed.
    pub(super) fn update_block_devices<'a>(&mut self, bl: &Blacklist, names: impl IntoIterator<Item = &'a str>) {
        if self.block_devices.update(&self.env.sysfs, bl, names) {
            self.block_devices_generation += 1;
        }
    }

    /// Every block device and what the daemon makes of it (`show devices`); a device
    /// is monitored when `is_path` says it is one of the owner's paths.
    pub(super) fn device_statuses(&self, is_path: impl Fn(&str) -> bool) -> Vec<(Arc<str>, DeviceStatus)> {
        self.block_devices
            .entries
            .iter()
            .map(|e| {
                let st = if is_path(&e.name) {
                    DeviceStatus::Monitored
                } else if e.blacklisted {
                    DeviceStatus::Blacklisted
                } else {
                    DeviceStatus::Unmonitored
                };
                (Arc::clone(&e.name), st)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::{BlockDevices, Listed, udev_cmp};
    use crate::config::Config;
    use crate::config::blacklist::Blacklist;
    use crate::discovery::SysfsRoot;

    /// `/sys/block/NAME` as the kernel makes it: a link to the device's directory.
    fn link(root: &SysfsRoot, name: &str, parent: &str) {
        symlink(
            format!("../devices/{parent}/block/{name}"),
            root.sys("block").join(name),
        )
        .unwrap();
    }

    #[test]
    fn looking_again_at_named_devices_gives_what_a_full_read_gives() {
        let dir = tempfile::tempdir().unwrap();
        let root = SysfsRoot::new(dir.path());
        std::fs::create_dir_all(root.sys("block")).unwrap();
        let host = |h: u32, lun: u32| format!("pseudo_0/adapter{h}/host{h}/target{h}:0:0/{h}:0:0:{lun}");
        link(&root, "sda", &host(1, 0));
        link(&root, "sdb", &host(2, 0));
        link(&root, "dm-0", "virtual");
        link(&root, "loop0", "virtual");
        let cfg = Config::default();
        let bl = Blacklist::new(&cfg, false);
        let mut known = BlockDevices::read(&root, &cfg);
        assert!(
            !known.update(&root, &bl, ["sda", "sdb", "sdz", "sda1", "..", ""]),
            "nothing changed"
        );
        // sda gone, sdc (host 1, LUN 1: between sda's place and sdb) and dm-1 new; a
        // partition's uevent names no entry; sdb gone and back under another host
        std::fs::remove_file(root.sys("block/sda")).unwrap();
        link(&root, "sdc", &host(1, 1));
        link(&root, "dm-1", "virtual");
        std::fs::remove_file(root.sys("block/sdb")).unwrap();
        link(&root, "sdb", &host(0, 3));
        assert!(known.update(&root, &bl, ["sda", "sdc", "sdc1", "dm-1", "sdb", "sdb"]));
        assert_eq!(known, BlockDevices::read(&root, &cfg));
        let names: Vec<&str> = known.entries.iter().map(|e| &*e.name).collect();
        assert_eq!(names, ["sdb", "sdc", "loop0", "dm-0", "dm-1"]);
    }

    #[test]
    fn devices_in_udev_order_stacked_ones_last() {
        // as upstream 0.14.3 listed a lab VM's (cli_compat_upstream): SCSI disks by their
        // device path, then loop devices, then dm-N in name order
        let e = |n: &str, p: &str| Listed {
            name: n.into(),
            devpath: format!("../devices/{p}/{n}"),
            blacklisted: false,
        };
        let mut got = [
            e("dm-10", "virtual/block"),
            e("loop0", "virtual/block"),
            e("dm-2", "virtual/block"),
            e("sdg", "tcm_loop_0/tcm_loop_adapter_1/host1/target1:0:1/1:0:1:0/block"),
            e("sda", "tcm_loop_0/tcm_loop_adapter_0/host0/target0:0:1/0:0:1:0/block"),
            e("dm-0", "virtual/block"),
            e("md0", "virtual/block"),
        ];
        got.sort_by(udev_cmp);
        let names: Vec<&str> = got.iter().map(|e| &*e.name).collect();
        assert_eq!(names, ["sda", "sdg", "loop0", "dm-0", "dm-10", "dm-2", "md0"]);
    }
}
