//! The daemon's device-mapper port over the dm module's backend (ioctls or fake).

use super::owner::{ExistingMap, MapOps, RemoveError};
use crate::dm::{DmBackend, MULTIPATH_TARGET, TargetLine};

/// Adapts any [`DmBackend`] to the owner's narrow [`MapOps`] port.
pub struct DmPort<B: DmBackend>(pub B);

fn one_multipath_line(name: &str, lines: Vec<TargetLine>) -> Result<TargetLine, String> {
    match <[TargetLine; 1]>::try_from(lines) {
        Ok([line]) if line.target == MULTIPATH_TARGET => Ok(line),
        Ok([line]) => Err(format!("{name}: target is '{}', not multipath", line.target)),
        Err(lines) => Err(format!("{name}: {} targets, expected one multipath target", lines.len())),
    }
}

fn targets(sectors: u64, params: &str) -> [TargetLine; 1] {
    [TargetLine { start: 0, length: sectors, target: MULTIPATH_TARGET.to_string(), params: params.to_string() }]
}

impl<B: DmBackend> MapOps for DmPort<B> {
    fn list_maps(&mut self) -> Result<Vec<ExistingMap>, String> {
        let mut maps = Vec::new();
        for dev in self.0.list().map_err(|e| e.to_string())? {
            let info = match self.0.info(&dev.name) {
                Ok(i) => i,
                // Removed between list and info: not ours to worry about.
                Err(_) => continue,
            };
            if info.uuid.strip_prefix("mpath-").is_none_or(|w| w.is_empty()) {
                continue;
            }
            let table = match self.0.table(&dev.name).map_err(|e| e.to_string()).and_then(|t| one_multipath_line(&dev.name, t)) {
                Ok(t) => t,
                Err(e) => {
                    log::warn!("{}: not adopting: {e}", dev.name);
                    continue;
                }
            };
            let status = self
                .0
                .status(&dev.name)
                .map_err(|e| e.to_string())
                .and_then(|s| one_multipath_line(&dev.name, s))
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

    fn create_map(&mut self, name: &str, uuid: &str, sectors: u64, params: &str) -> Result<u32, String> {
        self.0.create_map(name, uuid, &targets(sectors, params)).map(|i| i.minor).map_err(|e| e.to_string())
    }

    fn reload_map(&mut self, name: &str, sectors: u64, params: &str) -> Result<(), String> {
        self.0.reload(name, &targets(sectors, params)).map(|_| ()).map_err(|e| e.to_string())
    }

    fn message(&mut self, name: &str, msg: &str) -> Result<(), String> {
        self.0.message(name, msg).map(|_| ()).map_err(|e| e.to_string())
    }

    fn status(&mut self, name: &str) -> Result<String, String> {
        let lines = self.0.status(name).map_err(|e| e.to_string())?;
        one_multipath_line(name, lines).map(|l| l.params)
    }

    fn remove_map(&mut self, name: &str) -> Result<(), RemoveError> {
        self.0.remove(name).map_err(|e| match e.errno() {
            Some(nix::errno::Errno::EBUSY) => RemoveError::Busy,
            _ => RemoveError::Failed(e.to_string()),
        })
    }

    fn suspend(&mut self, name: &str) -> Result<(), String> {
        self.0.suspend(name, true).map(|_| ()).map_err(|e| e.to_string())
    }

    fn resume(&mut self, name: &str) -> Result<(), String> {
        self.0.resume(name).map(|_| ()).map_err(|e| e.to_string())
    }
}
