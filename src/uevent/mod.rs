//! Kernel and udev uevents: parsing, classification, batch filtering and the
//! netlink reader thread.
//!
//! Two wire formats arrive on NETLINK_KOBJECT_UEVENT: the kernel's own (group 1,
//! `ACTION@DEVPATH\0KEY=VAL\0…`) and udevd's re-broadcast (group 2, a binary
//! `libudev` header followed by `KEY=VAL\0…` properties that include the udev-rule
//! properties such as `ID_SERIAL`).

mod merge;
mod parse;
mod reader;

pub use merge::{MergedUevent, merge_batch};
pub use parse::{UeventError, parse, parse_kernel, parse_udev};
pub use reader::{UEVENT_GROUP_KERNEL, UEVENT_GROUP_UDEV, spawn_reader};

use std::collections::BTreeMap;
use std::fmt;

/// One uevent: the common fields lifted out, everything (including them) in `env`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uevent {
    pub action: String,
    pub devpath: String,
    pub subsystem: Option<String>,
    /// Kernel device name without `/dev/` (e.g. `sdb`, `dm-0`), from `DEVNAME`.
    pub devname: Option<String>,
    pub seqnum: Option<u64>,
    pub env: BTreeMap<String, String>,
}

impl Uevent {
    /// Builds an event from `KEY=VALUE` properties; ACTION and DEVPATH are required.
    pub fn from_env(env: BTreeMap<String, String>) -> Result<Self, UeventError> {
        let action = env.get("ACTION").cloned().ok_or(UeventError::Missing("ACTION"))?;
        let devpath = env.get("DEVPATH").cloned().ok_or(UeventError::Missing("DEVPATH"))?;
        let seqnum = match env.get("SEQNUM") {
            None => None,
            Some(s) => Some(s.parse().map_err(|_| UeventError::BadSeqnum(s.clone()))?),
        };
        let devname = env
            .get("DEVNAME")
            .map(|d| d.strip_prefix("/dev/").unwrap_or(d).to_owned());
        Ok(Uevent {
            action,
            devpath,
            subsystem: env.get("SUBSYSTEM").cloned(),
            devname,
            seqnum,
            env,
        })
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.env.get(key).map(String::as_str)
    }

    /// Kernel name: `DEVNAME` if present, else the last component of the devpath.
    pub fn kernel_name(&self) -> &str {
        match &self.devname {
            Some(d) => d.rsplit('/').next().unwrap_or(d),
            None => self.devpath.rsplit('/').next().unwrap_or(&self.devpath),
        }
    }

    /// True for a dm device created by multipath: `DM_UUID` is `mpath-` plus a WWID.
    pub fn is_dm_multipath(&self) -> bool {
        self.get("DM_UUID")
            .and_then(|u| u.strip_prefix("mpath-"))
            .is_some_and(|wwid| !wwid.is_empty())
    }

    /// `MAJOR` as a number; absent, empty, signed, hex or overflowing values give `None`.
    pub fn major(&self) -> Option<u32> {
        let v = self.get("MAJOR")?;
        if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        v.parse::<i32>().ok().map(|m| m as u32)
    }

    /// The dm-multipath path event this carries (`DM_ACTION` PATH_FAILED / PATH_REINSTATED).
    pub fn dm_action(&self) -> Option<DmPathEvent> {
        let action = match self.get("DM_ACTION")? {
            "PATH_FAILED" => DmPathAction::PathFailed,
            "PATH_REINSTATED" => DmPathAction::PathReinstated,
            _ => return None,
        };
        Some(DmPathEvent {
            action,
            path: self.get("DM_PATH")?.to_owned(),
            nr_valid_paths: self.get("DM_NR_VALID_PATHS").and_then(|n| n.parse().ok()),
            map_name: self.get("DM_NAME").map(str::to_owned),
            dm_seqnum: self.get("DM_SEQNUM").and_then(|n| n.parse().ok()),
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DmPathAction {
    PathFailed,
    PathReinstated,
}

/// The kernel telling us it failed or reinstated a path of a map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DmPathEvent {
    pub action: DmPathAction,
    /// `major:minor` of the path.
    pub path: String,
    pub nr_valid_paths: Option<u32>,
    pub map_name: Option<String>,
    /// Per-map event counter from dm-mpath (not the global uevent SEQNUM).
    pub dm_seqnum: Option<u64>,
}

/// The `uid_attrs` setting: per device-name prefix, which udev property holds the WWID.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UidAttrs {
    entries: Vec<(String, String)>,
}

impl UidAttrs {
    /// Parses `"sd:ID_SERIAL dasd:ID_UID"` (whitespace separated `prefix:property`).
    pub fn parse(text: &str) -> Result<Self, UidAttrsError> {
        let mut entries = Vec::new();
        for item in text.split_whitespace() {
            match item.split_once(':') {
                Some((prefix, attr)) if !prefix.is_empty() && !attr.is_empty() => {
                    entries.push((prefix.to_owned(), attr.to_owned()))
                }
                _ => return Err(UidAttrsError(item.to_owned())),
            }
        }
        Ok(UidAttrs { entries })
    }

    /// The property for a device name: the first entry whose prefix starts the name.
    pub fn attr_for(&self, devname: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(prefix, _)| devname.starts_with(prefix.as_str()))
            .map(|(_, attr)| attr.as_str())
    }

    /// The WWID an event carries: the property `attr_for` names for its kernel name,
    /// else `default_attr` (the `uid_attribute` setting, e.g. `ID_SERIAL`).
    pub fn wwid_of(&self, ev: &Uevent, default_attr: &str) -> Option<String> {
        let attr = self.attr_for(ev.kernel_name()).unwrap_or(default_attr);
        ev.get(attr).filter(|w| !w.is_empty()).map(str::to_owned)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UidAttrsError(pub String);

impl fmt::Display for UidAttrsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "uid_attrs entry {:?} is not '<device prefix>:<udev property>'",
            self.0
        )
    }
}

impl std::error::Error for UidAttrsError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(pairs: &[&str]) -> Uevent {
        let mut env: BTreeMap<String, String> = [("ACTION", "change"), ("DEVPATH", "/devices/virtual/block/dm-0")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        for p in pairs {
            let (k, v) = p.split_once('=').unwrap();
            env.insert(k.into(), v.into());
        }
        Uevent::from_env(env).unwrap()
    }

    // Vectors from upstream tests/uevent.c.
    #[test]
    fn major_vectors() {
        assert_eq!(ev(&["MAJOR=17"]).major(), Some(17));
        for bad in [
            "MAJOr=1",
            "MAJORIE=1",
            "MAJOR=max",
            "MAJOR=0x10",
            "MAJOR=-17",
            "MAJOR=",
            "MAJOR=+17",
            "MAJOR=99999999999",
        ] {
            assert_eq!(ev(&[bad]).major(), None, "{bad}");
        }
        // `MAJOR17` has no '=', so it is no property at all: the packet is refused.
        assert!(parse_kernel(b"change@/x\0ACTION=change\0DEVPATH=/x\0MAJOR17\0").is_err());
    }

    #[test]
    fn dm_multipath_vectors() {
        assert!(ev(&["DM_UUID=mpath-foo"]).is_dm_multipath());
        assert!(!ev(&["DM_UUID=mpath-"]).is_dm_multipath());
        assert!(!ev(&["DM_UUID=mpathfoo"]).is_dm_multipath());
        assert!(!ev(&["DM_UUID="]).is_dm_multipath());
        assert!(!ev(&[]).is_dm_multipath());
    }

    #[test]
    fn uid_attrs_vectors() {
        let u = UidAttrs::parse("dasd:ID_SPAM   sd:ID_BOGUS nvme:ID_EGGS    ").unwrap();
        assert_eq!(u.attr_for("sdaw"), Some("ID_BOGUS"));
        assert_eq!(u.attr_for("dasdu"), Some("ID_SPAM"));
        assert_eq!(u.attr_for("nvme2n4"), Some("ID_EGGS"));
        assert_eq!(u.attr_for("hda"), None);
        assert_eq!(
            UidAttrs::parse("sd:ID_SERIAL bogus").unwrap_err().to_string(),
            "uid_attrs entry \"bogus\" is not '<device prefix>:<udev property>'"
        );
        assert!(UidAttrs::parse(":ID_X").is_err());
        let e = ev(&["DEVNAME=/dev/dasda", "ID_SPAM=w1", "ID_SERIAL=w2"]);
        assert_eq!(u.wwid_of(&e, "ID_SERIAL").as_deref(), Some("w1"));
        let e = ev(&["DEVNAME=/dev/vda", "ID_SPAM=w1", "ID_SERIAL=w2"]);
        assert_eq!(u.wwid_of(&e, "ID_SERIAL").as_deref(), Some("w2"));
        let e = ev(&["DEVNAME=/dev/sdb", "ID_BOGUS="]);
        assert_eq!(u.wwid_of(&e, "ID_SERIAL"), None);
        assert!(UidAttrs::parse("sd:").is_err());
    }

    #[test]
    fn dm_action_from_measured_event() {
        // As captured in the lab VM (vm-harness.md §3).
        let e = ev(&[
            "SUBSYSTEM=block",
            "DM_TARGET=multipath",
            "DM_ACTION=PATH_FAILED",
            "DM_SEQNUM=1",
            "DM_PATH=8:16",
            "DM_NR_VALID_PATHS=1",
            "DM_NAME=mpatha",
            "DM_UUID=",
            "DEVNAME=/dev/dm-0",
            "SEQNUM=725",
            "MAJOR=254",
            "MINOR=0",
        ]);
        assert_eq!(
            e.dm_action(),
            Some(DmPathEvent {
                action: DmPathAction::PathFailed,
                path: "8:16".into(),
                nr_valid_paths: Some(1),
                map_name: Some("mpatha".into()),
                dm_seqnum: Some(1),
            })
        );
        assert_eq!(e.devname.as_deref(), Some("dm-0"));
        assert_eq!(e.kernel_name(), "dm-0");
        assert_eq!(e.seqnum, Some(725));
        assert_eq!(e.major(), Some(254));
        let r = ev(&["DM_ACTION=PATH_REINSTATED", "DM_PATH=8:0", "DM_NR_VALID_PATHS=2"]);
        assert_eq!(
            r.dm_action().map(|d| (d.action, d.nr_valid_paths)),
            Some((DmPathAction::PathReinstated, Some(2)))
        );
        assert_eq!(ev(&["DM_ACTION=PATH_FAILED"]).dm_action(), None, "no DM_PATH");
        assert_eq!(ev(&["DM_ACTION=OTHER", "DM_PATH=8:0"]).dm_action(), None);
    }
}
