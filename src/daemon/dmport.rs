//! The daemon's device-mapper port over the dm module's backend (ioctls or fake).

use std::sync::Arc;
use std::thread;
use std::time::Instant;

use crossbeam_channel::Sender;

use super::owner::{ExistingMap, Load, LoadDone, LoadKind, MapOps, PartitionMap};
use crate::dm::udev_cookie::{Patience, UdevOp, op_flags};
use crate::dm::{DmBackend, DmError, MULTIPATH_TARGET, MapUdev, Suspend, TargetLine};

/// Stack of a thread that waits for udev's completion of a new map's cookie.
const UDEV_WAIT_STACK: usize = 128 * 1024;

/// Adapts any [`DmBackend`] to the owner's narrow [`MapOps`] port. A reload runs on a
/// thread of its own (its suspend may wait minutes for IO in flight on a hung path);
/// its end is sent to `loads`.
pub struct DmPort<B: DmBackend> {
    dm: Arc<B>,
    loads: Sender<LoadDone>,
}

impl<B: DmBackend> DmPort<B> {
    pub fn new(dm: B, loads: Sender<LoadDone>) -> Self {
        DmPort {
            dm: Arc::new(dm),
            loads,
        }
    }
}

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

impl<B: DmBackend + Send + Sync + 'static> MapOps for DmPort<B> {
    fn list_maps(&mut self) -> Result<Vec<ExistingMap>, DmError> {
        let mut maps = Vec::new();
        for dev in self.dm.list()? {
            let info = match self.dm.info(&dev.name) {
                Ok(i) => i,
                // Removed between list and info: not ours to worry about.
                Err(_) => continue,
            };
            if info.uuid.strip_prefix("mpath-").is_none_or(|w| w.is_empty()) {
                continue;
            }
            let table = match self
                .dm
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
                .dm
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
    ) -> Result<(u32, Load), DmError> {
        let (info, pending) = self
            .dm
            .create_map_started(name, uuid, &targets(sectors, params), udev)?;
        let Some(pending) = pending else {
            return Ok((info.minor, Load::Done));
        };
        // udev's rules for the new map run for about a second under load, one map after
        // the other: waiting here would make the owner create a thousand maps one a second.
        let (map, done) = (name.to_string(), self.loads.clone());
        // One a new map, so up to a thousand at once at startup: each waits in semop and
        // logs, and needs little stack. It waits as long as udev is busy (at startup its
        // queue runs for minutes), so the map's next reload still follows udev's create.
        let started = thread::Builder::new()
            .name("udev-wait".into())
            .stack_size(UDEV_WAIT_STACK)
            .spawn(move || {
                let t = Instant::now();
                pending.wait(Patience::WhileUdevBusy);
                let _ = done.send(LoadDone {
                    map,
                    kind: LoadKind::CreateUdev,
                    result: Ok(()),
                    took: t.elapsed(),
                });
            });
        match started {
            Ok(_) => Ok((info.minor, Load::Running)),
            Err(e) => {
                // The closure and the cookie in it went with the failed spawn, the cookie's
                // semaphore with them: udev's completion later finds none and only logs.
                log::warn!("{name}: cannot start a thread to wait for udev ({e}); going on without waiting");
                Ok((info.minor, Load::Done))
            }
        }
    }

    fn reload_map(
        &mut self,
        name: &str,
        sectors: u64,
        params: &str,
        udev: MapUdev,
        how: Suspend,
    ) -> Result<Load, DmError> {
        let table = targets(sectors, params);
        let (dm, map, done) = (Arc::clone(&self.dm), name.to_string(), self.loads.clone());
        let started = thread::Builder::new().name("dm-load".into()).spawn(move || {
            let t = Instant::now();
            let result = dm.reload(&map, &table, udev, how).map(|_| ());
            // The daemon may be shutting down; then nobody waits for the answer.
            let _ = done.send(LoadDone {
                map,
                kind: LoadKind::Reload,
                result,
                took: t.elapsed(),
            });
        });
        match started {
            Ok(_) => Ok(Load::Running),
            Err(e) => {
                log::warn!("{name}: cannot start a thread for the reload ({e}); reloading on this one");
                self.dm
                    .reload(name, &targets(sectors, params), udev, how)
                    .map(|_| Load::Done)
            }
        }
    }

    fn message(&mut self, name: &str, msg: &str) -> Result<(), DmError> {
        self.dm.message(name, msg).map(|_| ())
    }

    fn status(&mut self, name: &str) -> Result<String, DmError> {
        let lines = self.dm.status(name)?;
        one_multipath_line("status", name, lines).map(|l| l.params)
    }

    fn remove_map(&mut self, name: &str, deferred: bool) -> Result<(), DmError> {
        self.dm
            .remove(name, op_flags(UdevOp::Remove, MapUdev::default()), deferred)
    }

    fn open_count(&mut self, name: &str) -> Result<i32, DmError> {
        self.dm.info(name).map(|i| i.open_count)
    }

    fn partition_maps(&mut self, name: &str) -> Result<Vec<PartitionMap>, DmError> {
        Ok(self
            .dm
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
        self.dm.suspend(name, how).map(|_| ())
    }

    fn resume(&mut self, name: &str, udev: MapUdev) -> Result<(), DmError> {
        self.dm
            .resume(name, Suspend::KEEP_IO, op_flags(UdevOp::Resume, udev))
            .map(|_| ())
    }
}
