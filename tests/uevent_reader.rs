//! The uevent reader against the real kernel: needs root (writing a sysfs uevent file).

use std::time::Duration;

use multipathd::uevent::{UEVENT_GROUP_KERNEL, spawn_reader};

#[test]
fn kernel_change_event_arrives_and_stop_disconnects() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root to trigger a uevent");
        return;
    }
    let (tx, rx) = crossbeam_channel::unbounded();
    let reader = spawn_reader(UEVENT_GROUP_KERNEL, tx).expect("netlink uevent socket");
    std::fs::write("/sys/class/mem/null/uevent", "change").expect("trigger uevent");
    // Other devices may emit events meanwhile: look for ours, bounded by a generous deadline.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let ev = loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let ev = rx.recv_timeout(left).expect("uevent for /dev/null within 10 s");
        if ev.devpath == "/devices/virtual/mem/null" {
            break ev;
        }
    };
    assert_eq!(ev.action, "change");
    assert_eq!(ev.subsystem.as_deref(), Some("mem"));
    assert_eq!(ev.devname.as_deref(), Some("null"));
    assert_eq!(ev.get("MAJOR"), Some("1"));
    assert!(ev.seqnum.is_some());
    reader.stop();
    // After stop the sender is dropped, so the channel disconnects.
    while rx.try_recv().is_ok() {}
    assert!(matches!(rx.recv(), Err(crossbeam_channel::RecvError)));
}
