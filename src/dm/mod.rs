//! Device-mapper: the `multipath` target's table and status text, the kernel
//! ioctl interface, and an in-memory fake behind the same `DmBackend` trait.

pub mod fake;
pub mod ioctl;
pub mod partmap;
pub mod status;
pub mod table;
mod tokens;
pub mod udev_cookie;

pub use fake::FakeDm;
pub use ioctl::DmIoctl;
pub use status::{GroupState, GroupStatus, MultipathStatus, PathStatus};
pub use table::{MultipathTable, PathGroup, TablePath, TargetLine};
pub use tokens::ParseError;
pub use udev_cookie::{MapUdev, PendingUdev, UdevFlags, UdevOp};

use std::fmt;

use nix::errno::Errno;

/// Target type of every map the daemon manages.
pub const MULTIPATH_TARGET: &str = "multipath";

/// DM UUID of the map for a WWID: `mpath-<wwid>`.
pub fn map_uuid(wwid: &str) -> String {
    format!("mpath-{wwid}")
}

/// A device-mapper device as listed by DM_LIST_DEVICES.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DmDevice {
    pub name: String,
    pub major: u32,
    pub minor: u32,
    /// Event counter (kernel interface 4.37 and later); changes on table events such as path failures.
    pub event_nr: Option<u32>,
}

/// State of one map (DM_DEV_STATUS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DmInfo {
    pub name: String,
    pub uuid: String,
    pub major: u32,
    pub minor: u32,
    pub open_count: i32,
    pub event_nr: u32,
    pub target_count: u32,
    pub suspended: bool,
    pub read_only: bool,
    pub live_table: bool,
    pub inactive_table: bool,
}

/// How a suspend treats the map; a resume that swaps in a loaded table suspends the
/// map itself first, the same way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Suspend {
    /// Queued IO is kept rather than flushed (DM_NOFLUSH_FLAG).
    pub noflush: bool,
    /// The filesystem on the map is not frozen (DM_SKIP_LOCKFS_FLAG).
    pub skip_lockfs: bool,
}

impl Suspend {
    /// Upstream's daemon never freezes a filesystem on a map: a freeze writes back dirty
    /// data, which a map without usable paths may never complete. Reloads, the `suspend
    /// map` / `resume map` commands and the resume of a create also keep queued IO.
    pub const KEEP_IO: Suspend = Suspend {
        noflush: true,
        skip_lockfs: true,
    };
    /// A resize's reload and the suspend before a map is removed flush queued IO.
    pub const FLUSH: Suspend = Suspend {
        noflush: false,
        skip_lockfs: true,
    };
}

/// A failed device-mapper operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DmError {
    /// The control node could not be opened: no dm-mod, no /dev node, or no permission.
    Unavailable { path: String, errno: Errno },
    /// An ioctl (or its fake) failed; `op` is the DM command, `name` the map if any.
    Ioctl {
        op: &'static str,
        name: Option<String>,
        errno: Errno,
    },
    /// The request cannot be expressed (name too long, bad table text, ...).
    Invalid {
        op: &'static str,
        name: Option<String>,
        why: String,
    },
    /// The kernel's reply did not have the expected shape.
    BadReply {
        op: &'static str,
        name: Option<String>,
        why: String,
    },
}

impl DmError {
    /// The errno, for callers that react to e.g. ENXIO (map gone) or EBUSY (in use).
    pub fn errno(&self) -> Option<Errno> {
        match self {
            DmError::Unavailable { errno, .. } | DmError::Ioctl { errno, .. } => Some(*errno),
            _ => None,
        }
    }
}

/// The C library's text for an errno (e.g. "Inappropriate ioctl for device"), as
/// dmsetup and the kernel documentation word it.
pub fn errno_text(errno: Errno) -> String {
    let full = std::io::Error::from_raw_os_error(errno as i32).to_string();
    match full.rfind(" (os error ") {
        Some(i) => full[..i].to_owned(),
        None => full,
    }
}

fn op_and_name(f: &mut fmt::Formatter<'_>, op: &str, name: &Option<String>) -> fmt::Result {
    match name {
        Some(n) => write!(f, "{op} {n}"),
        None => write!(f, "{op}"),
    }
}

impl fmt::Display for DmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DmError::Unavailable { path, errno } => {
                write!(f, "device-mapper not available: {path}: {}", errno_text(*errno))
            }
            DmError::Ioctl { op, name, errno } => {
                op_and_name(f, op, name)?;
                write!(f, ": {}", errno_text(*errno))
            }
            DmError::Invalid { op, name, why } => {
                op_and_name(f, op, name)?;
                write!(f, ": invalid request: {why}")
            }
            DmError::BadReply { op, name, why } => {
                op_and_name(f, op, name)?;
                write!(f, ": unexpected kernel reply: {why}")
            }
        }
    }
}

impl std::error::Error for DmError {}

/// The device-mapper operations the daemon needs. Object safe, so the daemon can
/// hold a `Box<dyn DmBackend>`: the kernel (`DmIoctl`) or the fake (`FakeDm`).
pub trait DmBackend: Send {
    /// Kernel DM interface version.
    fn version(&self) -> Result<[u32; 3], DmError>;
    fn list(&self) -> Result<Vec<DmDevice>, DmError>;
    /// Creates an empty, suspended-less device with no table; `udev` as for the resume
    /// that will make it live (the kernel sends no uevent for a create).
    fn create(&self, name: &str, uuid: &str, udev: UdevFlags) -> Result<DmInfo, DmError>;
    /// Loads `targets` as the inactive table; `resume` makes it live.
    fn load(&self, name: &str, targets: &[TargetLine]) -> Result<DmInfo, DmError>;
    fn suspend(&self, name: &str, how: Suspend) -> Result<DmInfo, DmError>;
    /// Resume, remove and rename make the kernel send a uevent: the backend tells the
    /// udev rules `udev` (with PRIMARY_SOURCE added) and waits for udev as libdevmapper
    /// does (`udev_cookie`). A resume with a loaded table suspends first as `how` says.
    fn resume(&self, name: &str, how: Suspend, udev: UdevFlags) -> Result<DmInfo, DmError> {
        self.resume_started(name, how, udev).map(udev_cookie::waited)
    }
    /// As `resume`, but returns as soon as the kernel resumed: udev's completion of the
    /// uevent, if there is one to wait for, is left to the caller (none without udev
    /// synchronisation).
    fn resume_started(
        &self,
        name: &str,
        how: Suspend,
        udev: UdevFlags,
    ) -> Result<(DmInfo, Option<PendingUdev>), DmError>;
    /// `deferred`: a device that is open is removed when its last opener closes it
    /// (DM_DEFERRED_REMOVE), and the call succeeds; `@cancel_deferred_remove` undoes it.
    fn remove(&self, name: &str, udev: UdevFlags, deferred: bool) -> Result<(), DmError>;
    fn rename(&self, name: &str, new_name: &str, udev: UdevFlags) -> Result<(), DmError>;
    fn info(&self, name: &str) -> Result<DmInfo, DmError>;
    /// Live table, one line per target.
    fn table(&self, name: &str) -> Result<Vec<TargetLine>, DmError>;
    /// Live status, one line per target.
    fn status(&self, name: &str) -> Result<Vec<TargetLine>, DmError>;
    /// Sends a target message to sector 0; returns the target's reply text if any.
    fn message(&self, name: &str, message: &str) -> Result<Option<String>, DmError>;
    /// Arms event polling on the control node (interface 4.37+): the next table event
    /// on any map makes the control fd readable.
    fn arm_poll(&self) -> Result<(), DmError>;

    /// Create + load + resume, removing the half-made device if a later step fails.
    /// The resume carries upstream's create flags for the map (`UdevOp::Create`).
    fn create_map(&self, name: &str, uuid: &str, targets: &[TargetLine], m: MapUdev) -> Result<DmInfo, DmError> {
        self.create_device(name, uuid, m)?;
        self.fill_created(name, targets, m).map(udev_cookie::waited)
    }

    /// A new map's first step: the device without a table. The kernel numbers it here
    /// (dm-N, the lowest free minor), so maps numbered as upstream numbers them are
    /// created in its order.
    fn create_device(&self, name: &str, uuid: &str, m: MapUdev) -> Result<DmInfo, DmError> {
        self.create(name, uuid, udev_cookie::op_flags(UdevOp::Create, m))
    }

    /// The rest of `create_map` after [`DmBackend::create_device`]: the table loaded and
    /// resumed, the device removed if either fails. Returns once the map is live, leaving
    /// udev's completion of its first uevent to the caller (`resume_started`).
    fn fill_created(
        &self,
        name: &str,
        targets: &[TargetLine],
        m: MapUdev,
    ) -> Result<(DmInfo, Option<PendingUdev>), DmError> {
        let made = self
            .load(name, targets)
            .and_then(|_| self.resume_started(name, Suspend::KEEP_IO, udev_cookie::op_flags(UdevOp::Create, m)));
        if made.is_err()
            && let Err(e) = self.remove(name, udev_cookie::op_flags(UdevOp::Remove, m), false)
        {
            log::warn!("removing half-created map {name}: {e}");
        }
        made
    }

    /// Reload: load a new table and resume, which swaps it in after a suspend as `how`
    /// says (no suspend of our own, as upstream); the resume carries upstream's reload
    /// flags for the map (`UdevOp::Reload`). A resume that fails leaves the map
    /// suspended without the new table: it is resumed again on the old one, and the
    /// first error returned.
    fn reload(&self, name: &str, targets: &[TargetLine], m: MapUdev, how: Suspend) -> Result<DmInfo, DmError> {
        self.reload_started(name, targets, m, how).map(udev_cookie::waited)
    }

    /// As `reload`, but returns once the new table is live, leaving udev's completion
    /// of the resume's uevent to the caller (`resume_started`): a slow suspend and a
    /// busy udev are told apart.
    fn reload_started(
        &self,
        name: &str,
        targets: &[TargetLine],
        m: MapUdev,
        how: Suspend,
    ) -> Result<(DmInfo, Option<PendingUdev>), DmError> {
        self.load(name, targets)?;
        let udev = udev_cookie::op_flags(UdevOp::Reload, m);
        let resumed = self.resume_started(name, how, udev);
        if resumed.is_err()
            && self.info(name).is_ok_and(|i| i.suspended)
            && let Err(e) = self.resume(name, how, udev)
        {
            log::warn!("{name}: resuming on the old table: {e}");
        }
        resumed
    }

    /// kpartx's partition maps on the map `name`, as upstream finds them before it
    /// removes a map: every device whose uuid and table make it one (`partmap`).
    fn partition_maps(&self, name: &str) -> Result<Vec<DmInfo>, DmError> {
        let map = self.info(name)?;
        let devt = format!("{}:{}", map.major, map.minor);
        let mut parts = Vec::new();
        for dev in self.list()? {
            // A device removed since the list is not in the way.
            let Ok(info) = self.info(&dev.name) else { continue };
            if dev.name == name || !partmap::is_partition_uuid(&info.uuid, &map.uuid) {
                continue;
            }
            if let Ok(table) = self.table(&dev.name)
                && partmap::is_partition_of(&info.uuid, &table, &map.uuid, &devt)
            {
                parts.push(info);
            }
        }
        Ok(parts)
    }

    /// Parsed multipath status of a single-target multipath map.
    fn multipath_status(&self, name: &str) -> Result<MultipathStatus, DmError> {
        let line = single_multipath_line("DM_TABLE_STATUS", name, self.status(name)?)?;
        MultipathStatus::parse(&line.params).map_err(|e| DmError::BadReply {
            op: "DM_TABLE_STATUS",
            name: Some(name.to_owned()),
            why: format!("multipath status {:?}: {e}", line.params),
        })
    }

    /// Parsed multipath table of a single-target multipath map.
    fn multipath_table(&self, name: &str) -> Result<MultipathTable, DmError> {
        let line = single_multipath_line("DM_TABLE_STATUS", name, self.table(name)?)?;
        MultipathTable::parse(&line.params).map_err(|e| DmError::BadReply {
            op: "DM_TABLE_STATUS",
            name: Some(name.to_owned()),
            why: format!("multipath table {:?}: {e}", line.params),
        })
    }
}

fn single_multipath_line(op: &'static str, name: &str, lines: Vec<TargetLine>) -> Result<TargetLine, DmError> {
    let bad = |why: String| DmError::BadReply {
        op,
        name: Some(name.to_owned()),
        why,
    };
    let mut it = lines.into_iter();
    match (it.next(), it.next()) {
        (Some(l), None) if l.target == MULTIPATH_TARGET => Ok(l),
        (Some(l), None) => Err(bad(format!("target is {:?}, not multipath", l.target))),
        (None, _) => Err(bad("map has no live table".into())),
        (Some(_), Some(_)) => Err(bad("map has more than one target".into())),
    }
}

/// One-target multipath table line for `load`/`create_map`.
pub fn multipath_target(size_sectors: u64, table: &MultipathTable) -> Result<TargetLine, table::TableError> {
    Ok(TargetLine {
        start: 0,
        length: size_sectors,
        target: MULTIPATH_TARGET.to_owned(),
        params: table.format()?,
    })
}
