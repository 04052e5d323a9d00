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
    /// Names under `/sys/block`, in udev's enumeration order (`udev_order`).
    names: Vec<String>,
    /// Native NVMe multipath is on (the devnode blacklist then keeps its namespaces).
    native_nvme: bool,
}

impl BlockDevices {
    fn read(sysfs: &SysfsRoot) -> BlockDevices {
        let native_nvme =
            std::fs::read_to_string(sysfs.sys("module/nvme_core/parameters/multipath")).is_ok_and(|s| s.trim() == "Y");
        let entries: Vec<(String, String)> = std::fs::read_dir(sysfs.sys("block"))
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| {
                        let name = e.file_name().to_string_lossy().into_owned();
                        let devpath = std::fs::read_link(e.path())
                            .map_or_else(|_| name.clone(), |t| t.to_string_lossy().into_owned());
                        (name, devpath)
                    })
                    .collect()
            })
            .unwrap_or_default();
        BlockDevices {
            names: udev_order(entries),
            native_nvme,
        }
    }
}

/// Upstream lists what libudev enumerates, and libudev sorts by device path (the
/// `/sys/block/NAME` link's target) with device-mapper and md devices last, as they stack
/// on the others. Takes (name, device path) pairs, gives the names.
fn udev_order(mut entries: Vec<(String, String)>) -> Vec<String> {
    entries.sort_by(|(a, pa), (b, pb)| {
        let stacked = |n: &str| n.starts_with("dm-") || n.starts_with("md");
        (stacked(a), pa).cmp(&(stacked(b), pb))
    });
    entries.into_iter().map(|(n, _)| n).collect()
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

#[cfg(test)]
mod tests {
    use super::udev_order;

    #[test]
    fn devices_in_udev_order_stacked_ones_last() {
        // as upstream 0.14.3 listed a lab VM's (cli_compat_upstream): SCSI disks by their
        // device path, then loop devices, then dm-N in name order
        let e = |n: &str, p: &str| (n.to_string(), format!("../devices/{p}/{n}"));
        let got = udev_order(vec![
            e("dm-10", "virtual/block"),
            e("loop0", "virtual/block"),
            e("dm-2", "virtual/block"),
            e("sdg", "tcm_loop_0/tcm_loop_adapter_1/host1/target1:0:1/1:0:1:0/block"),
            e("sda", "tcm_loop_0/tcm_loop_adapter_0/host0/target0:0:1/0:0:1:0/block"),
            e("dm-0", "virtual/block"),
            e("md0", "virtual/block"),
        ]);
        assert_eq!(got, ["sda", "sdg", "loop0", "dm-0", "dm-10", "dm-2", "md0"]);
    }
}
