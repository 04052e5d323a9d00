//! The device state in sysfs (`/sys/block/<dev>/device/state`): the SCSI device's,
//! or for an NVMe namespace its controller's (`device` is the controller).
//!
//! Read before every check, as upstream does: a device the kernel has offlined or
//! blocked is not probed. It is also the whole of the `none` checker.

use std::io;
use std::path::Path;

use super::state::{PathState, Verdict};

/// The verdict implied by a sysfs device state word; `None` means the device is
/// running and the real checker should decide.
pub fn state_from_sysfs(word: &str) -> Option<Verdict> {
    match word.trim() {
        "running" | "live" => None,
        // The SCSI midlayer holds IO (error handling, transport loss), or an NVMe
        // controller is being set up or torn down: ask again soon.  (A `connecting`
        // or `resetting` NVMe controller is down, as upstream has it.)
        "blocked" | "quiesce" | "new" | "deleting" | "deleting (no IO)" => Some(Verdict::new(PathState::Pending, "")),
        _ => Some(Verdict::offline()),
    }
}

/// Reads the state file; a missing file means the device went away. One open and
/// one read into a small buffer (the longest state word is 16 bytes): the loop reads
/// every usable path's state each second, where `read_to_string`'s stat and second
/// read showed in the daemon's CPU time.
pub fn read_sysfs_state(file: &Path) -> Option<Verdict> {
    let mut buf = [0u8; 64];
    let read = std::fs::File::open(file).and_then(|mut f| io::Read::read(&mut f, &mut buf));
    match read {
        Ok(n) => state_from_sysfs(&String::from_utf8_lossy(&buf[..n])),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Some(Verdict::new(PathState::Removed, "")),
        Err(e) => {
            log::debug!("{}: {e}", file.display());
            Some(Verdict::new(PathState::Down, ""))
        }
    }
}

/// [`read_sysfs_state`] through a file kept open in `open` under `id`
/// ([`crate::discovery::sysfs::read_kept`]). A read that fails drops the file and
/// reads by path, which tells a device that went away.
pub fn read_open_state<K: std::hash::Hash + Eq + Copy>(
    open: &mut std::collections::HashMap<K, std::fs::File>,
    id: K,
    file: &Path,
) -> Option<Verdict> {
    let mut buf = [0u8; 64];
    match crate::discovery::sysfs::read_kept(open, id, file, &mut buf) {
        Ok(n) => state_from_sysfs(&String::from_utf8_lossy(&buf[..n])),
        Err(_) => {
            open.remove(&id);
            read_sysfs_state(file)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_words() {
        assert_eq!(state_from_sysfs("running\n"), None);
        assert_eq!(state_from_sysfs("live"), None);
        assert_eq!(state_from_sysfs("offline\n"), Some(Verdict::offline()));
        assert_eq!(
            state_from_sysfs("transport-offline").map(|v| v.state),
            Some(PathState::Down)
        );
        assert_eq!(state_from_sysfs("blocked").map(|v| v.state), Some(PathState::Pending));
        assert_eq!(state_from_sysfs("quiesce\n").map(|v| v.state), Some(PathState::Pending));
        assert_eq!(state_from_sysfs("created").map(|v| v.state), Some(PathState::Down));
        // NVMe controller states
        assert_eq!(state_from_sysfs("new\n").map(|v| v.state), Some(PathState::Pending));
        assert_eq!(state_from_sysfs("deleting").map(|v| v.state), Some(PathState::Pending));
        assert_eq!(
            state_from_sysfs("deleting (no IO)\n").map(|v| v.state),
            Some(PathState::Pending)
        );
        assert_eq!(state_from_sysfs("connecting").map(|v| v.state), Some(PathState::Down));
        assert_eq!(state_from_sysfs("resetting").map(|v| v.state), Some(PathState::Down));
        assert_eq!(state_from_sysfs("dead").map(|v| v.state), Some(PathState::Down));
    }

    #[test]
    fn a_kept_file_is_read_again_and_a_missing_one_is_not_kept() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("state");
        std::fs::write(&f, "running\n").unwrap();
        let mut open = std::collections::HashMap::new();
        assert_eq!(read_open_state(&mut open, 1u64, &f), None);
        assert_eq!(open.len(), 1, "kept open");
        std::fs::write(&f, "offline\n").unwrap();
        assert_eq!(read_open_state(&mut open, 1u64, &f), Some(Verdict::offline()));
        let gone = dir.path().join("gone");
        assert_eq!(
            read_open_state(&mut open, 2u64, &gone).map(|v| v.state),
            Some(PathState::Removed)
        );
        assert_eq!(open.len(), 1, "nothing kept for a missing file");
    }

    #[test]
    fn reads_files() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("state");
        std::fs::write(&f, "running\n").unwrap();
        assert_eq!(read_sysfs_state(&f), None);
        std::fs::write(&f, "offline\n").unwrap();
        assert_eq!(read_sysfs_state(&f).map(|v| v.state), Some(PathState::Down));
        assert_eq!(
            read_sysfs_state(&dir.path().join("gone")).map(|v| v.state),
            Some(PathState::Removed)
        );
    }
}
