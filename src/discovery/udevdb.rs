//! The udev database: `/run/udev/data/b<major>:<minor>` files, whose `E:KEY=VALUE`
//! lines hold the properties udev rules attached to a block device (ID_SERIAL,
//! ID_WWN, ...). Reading them directly avoids linking libudev.

use std::io;
use std::path::{Path, PathBuf};

/// The real location of the database.
pub const DEFAULT_UDEV_DATA_DIR: &str = "/run/udev/data";

/// Properties of one device, in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UdevProperties(pub Vec<(String, String)>);

impl UdevProperties {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

/// Parse the text of a udev database file: only `E:` lines carry properties;
/// other records (S: symlinks, I: init time, G: tags...) are ignored, as are
/// `E:` lines without `=`.
pub fn parse(text: &str) -> UdevProperties {
    UdevProperties(
        text.lines()
            .filter_map(|l| l.strip_prefix("E:"))
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

/// Path of the database file for a block device number.
pub fn data_file(dir: &Path, major: u32, minor: u32) -> PathBuf {
    dir.join(format!("b{major}:{minor}"))
}

/// Read the properties of block device `major:minor`. `Ok(None)` when udev has no
/// record of it (not processed yet, or no udevd at all).
pub fn read(dir: &Path, major: u32, minor: u32) -> io::Result<Option<UdevProperties>> {
    let file = data_file(dir, major, minor);
    match std::fs::read(&file) {
        Ok(bytes) => Ok(Some(parse(&String::from_utf8_lossy(&bytes)))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io::Error::new(e.kind(), format!("{}: {e}", file.display()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "S:disk/by-id/scsi-333333330000007d0\nI:3651853\n\
E:ID_SCSI=1\nE:ID_VENDOR=Linux\nE:ID_SERIAL=333333330000007d0\nE:ID_WWN=0x33333330000007d0\n\
E:DM_MULTIPATH_DEVICE_PATH=1\nE:BROKEN\nE:EMPTY=\nG:systemd\nQ:systemd\nV:1\n";

    #[test]
    fn parses_e_lines_only() {
        let p = parse(SAMPLE);
        assert_eq!(p.get("ID_SERIAL"), Some("333333330000007d0"));
        assert_eq!(p.get("ID_WWN"), Some("0x33333330000007d0"));
        assert_eq!(p.get("EMPTY"), Some(""));
        assert_eq!(p.get("BROKEN"), None);
        assert_eq!(p.get("disk/by-id/scsi-333333330000007d0"), None);
        assert_eq!(p.0.len(), 6);
        assert_eq!(p.0[0], ("ID_SCSI".to_string(), "1".to_string()));
    }

    #[test]
    fn reads_by_device_number() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("b8:16"), SAMPLE).unwrap();
        let p = read(dir.path(), 8, 16).unwrap().unwrap();
        assert_eq!(p.get("ID_VENDOR"), Some("Linux"));
        assert_eq!(read(dir.path(), 8, 0).unwrap(), None);
    }

    #[test]
    fn unreadable_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("b8:32")).unwrap();
        let e = read(dir.path(), 8, 32).unwrap_err();
        assert!(e.to_string().contains("b8:32"), "{e}");
    }
}
