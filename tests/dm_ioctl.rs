//! The real ioctl backend on a machine without device-mapper fails clearly.

use std::path::Path;

use multipathd::dm::{DmError, DmIoctl, ioctl::DM_CONTROL};

#[test]
fn open_without_device_mapper_names_the_control_node() {
    if Path::new(DM_CONTROL).exists() {
        eprintln!("skipped: this machine has {DM_CONTROL}");
        return;
    }
    let e: DmError = DmIoctl::open().err().expect("open must fail without the control node");
    assert_eq!(
        e.to_string(),
        "device-mapper not available: /dev/mapper/control: No such file or directory"
    );
}

#[test]
fn open_of_a_non_dm_node_fails_with_the_ioctl_named() {
    // /dev/null opens fine but is no DM control node: the version ioctl is refused.
    let e = DmIoctl::open_path(Path::new("/dev/null")).err().expect("not a DM node");
    assert_eq!(e.to_string(), "DM_VERSION: Inappropriate ioctl for device");
}
