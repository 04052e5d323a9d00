//! The daemon's device-mapper port over the dm module's backend (ioctls or fake).

use super::owner::{ExistingMap, MapOps, PartitionMap};
use crate::dm::udev_cookie::{UdevOp, op_flags};
use crate::dm::{DmBackend, DmError, MULTIPATH_TARGET, MapUdev, Suspend, TargetLine};

/// Adapts any [`DmBackend`] to the owner's narrow [`MapOps`] port.
pub struct DmPort<B: DmBackend>(pub B);

/// The one `multipath` line of a map's table or status; anything else is a map
/// that is not ours to manage, reported as a reply of the wrong shape.
fn one_multipath_line(op: &'static str, name: &str, lines: Vec<TargetLine>) -> Result<TargetLine, DmError> {
    let why = match <[TargetLine; 1]>::try_from(lines) {
        Ok([line]) if line.target == MULTIPATH_TARGET => return Ok(line),
        Ok([line]) => format!("target is '{}', not multipath", line.target),
        Err(lines) => format!("{} targets, expected one multipath target", lines.len()),
    };
    Err(DmError::BadReply {
        op,
        name: Some(name.to_string()),
        why,
    })
}

fn targets(sectors: u64, params: &str) -> [TargetLine; 1] {
    [TargetLine {
        start: 0,
        length: sectors,
        target: MULTIPATH_TARGET.to_string(),
        params: params.to_string(),
    }]
}

impl<B: DmBackend> MapOps for DmPort<B> {
    fn list_maps(&mut self) -> Result<Vec<ExistingMap>, DmError> {
        let mut maps = Vec::new();
        for dev in self.0.list()? {
            let info = match self.0.info(&dev.name) {
                Ok(i) => i,
                // Removed between list and info: not ours to worry about.
                Err(_) => continue,
            };
            if info.uuid.strip_prefix("mpath-").is_none_or(|w| w.is_empty()) {
                continue;
            }
            let table = match self
                .0
                .table(&dev.name)
                .and_then(|t| one_multipath_line("table", &dev.name, t))
            {
                Ok(t) => t,
                Err(e) => {
                    log::warn!("{}: not adopting: {e}", dev.name);
                    continue;
                }
            };
            let status = self
                .0
                .status(&dev.name)
                .and_then(|s| one_multipath_line("status", &dev.name, s))
                .map(|l| l.params)
                .unwrap_or_default();
            maps.push(ExistingMap {
                name: dev.name,
                uuid: info.uuid,
                minor: info.minor,
                sectors: table.length,
                table: table.params,
                status,
            });
        }
        Ok(maps)
    }

    fn create_map(
        &mut self,
        name: &str,
        uuid: &str,
        sectors: u64,
        params: &str,
        udev: MapUdev,
    ) -> Result<u32, DmError> {
        self.0
            .create_map(name, uuid, &targets(sectors, params), udev)
            .map(|i| i.minor)
    }

    fn reload_map(
        &mut self,
        name: &str,
        sectors: u64,
        params: &str,
        udev: MapUdev,
        how: Suspend,
    ) -> Result<(), DmError> {
        self.0.reload(name, &targets(sectors, params), udev, how).map(|_| ())
    }

    fn message(&mut self, name: &str, msg: &str) -> Result<(), DmError> {
        self.0.message(name, msg).map(|_| ())
    }

    fn status(&mut self, name: &str) -> Result<String, DmError> {
        let lines = self.0.status(name)?;
        one_multipath_line("status", name, lines).map(|l| l.params)
    }

    fn remove_map(&mut self, name: &str) -> Result<(), DmError> {
        self.0.remove(name, op_flags(UdevOp::Remove, MapUdev::default()))
    }

    fn open_count(&mut self, name: &str) -> Result<i32, DmError> {
        self.0.info(name).map(|i| i.open_count)
    }

    fn partition_maps(&mut self, name: &str) -> Result<Vec<PartitionMap>, DmError> {
        Ok(self
            .0
            .partition_maps(name)?
            .into_iter()
            .map(|i| PartitionMap {
                has_table: i.live_table || i.inactive_table,
                open_count: i.open_count,
                name: i.name,
            })
            .collect())
    }

    fn suspend(&mut self, name: &str, how: Suspend) -> Result<(), DmError> {
        self.0.suspend(name, how).map(|_| ())
    }

    fn resume(&mut self, name: &str, udev: MapUdev) -> Result<(), DmError> {
        self.0
            .resume(name, Suspend::KEEP_IO, op_flags(UdevOp::Resume, udev))
            .map(|_| ())
    }
}
