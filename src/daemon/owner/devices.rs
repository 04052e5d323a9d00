//! The block devices `show devices` lists. The owner reads them from sysfs at
//! coldplug, on reconfigure and after uevents that add or remove a block device, and
//! publishes their statuses with the views: a user looping `show devices` costs the
//! daemon no sysfs IO.

use crate::cli::format::DeviceStatus;
use crate::config::blacklist::Blacklist;
use crate::discovery::SysfsRoot;
use crate::uevent::Uevent;

use super::Owner;

/// What sysfs said about the block devices at the last look.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct BlockDevices {
    /// Names under `/sys/block`, sorted.
    names: Vec<String>,
    /// Native NVMe multipath is on (the devnode blacklist then keeps its namespaces).
    native_nvme: bool,
}

impl BlockDevices {
    fn read(sysfs: &SysfsRoot) -> BlockDevices {
        let native_nvme =
            std::fs::read_to_string(sysfs.sys("module/nvme_core/parameters/multipath")).is_ok_and(|s| s.trim() == "Y");
        let mut names: Vec<String> = std::fs::read_dir(sysfs.sys("block"))
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        BlockDevices { names, native_nvme }
    }
}

/// Whether the uevent adds or removes a block device (the listing changes).
pub(super) fn changes_block_devices(ev: &Uevent) -> bool {
    ev.subsystem.as_deref() == Some("block") && matches!(ev.action.as_str(), "add" | "remove")
}

impl Owner {
    /// Reads the block devices again; counts a new generation if they changed.
    pub(super) fn reread_block_devices(&mut self) {
        let now = BlockDevices::read(&self.env.sysfs);
        if now != self.block_devices {
            self.block_devices = now;
            self.block_devices_generation += 1;
        }
    }

    /// Every block device and what the daemon makes of it (`show devices`).
    pub(super) fn device_statuses(&self) -> Vec<(String, DeviceStatus)> {
        let bl = Blacklist::new(&self.cfg, self.block_devices.native_nvme);
        self.block_devices
            .names
            .iter()
            .map(|n| {
                let st = if self.paths.contains_key(n) {
                    DeviceStatus::Monitored
                } else if bl.filter_devnode(n) > 0 {
                    DeviceStatus::Blacklisted
                } else {
                    DeviceStatus::Unmonitored
                };
                (n.clone(), st)
            })
            .collect()
    }
}
