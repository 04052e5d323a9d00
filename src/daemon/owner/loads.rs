//! Reloads that run off the owner's thread. A reload swaps the table in with a noflush
//! suspend, and the kernel's suspend waits for the IO in flight on the map: on a path
//! whose transport hangs, until the transport gives up. The owner must go on failing
//! and reinstating other maps' paths meanwhile, so the port may run the reload on a
//! thread of its own ([`Load::Running`]); its end comes back as a [`LoadDone`].
//!
//! A new map is live when the port's create returns, but udev's rules for its first
//! uevent run after that; the port may wait for them on another thread too
//! ([`LoadKind::CreateUdev`]), and the map counts as loading until then, so that its
//! next reload follows udev's handling of the create, as when the owner waited itself.
//!
//! Until then the map has a load in flight: a further reload waits for it (the newest
//! table wins), and so does the flush of a map that lost its last path; the ioctls that
//! would queue behind the kernel's suspend lock (remove, suspend, resume) are refused;
//! messages go to the live table as before, but a path only the table in flight holds
//! is not acted on until the load ends (its checks wait; the kernel would refuse a
//! message naming it). A CLI command that started a load is
//! answered when it ended (the run loop asks [`Owner::take_started_loads`]).

use crate::cli::parse::HandlerError;
use crate::dm::{DmError, MapUdev, Suspend};

use super::{Load, LoadDone, LoadKind, Owner};

/// What waits for a map's load in flight.
#[derive(Debug)]
pub(super) enum Next {
    Nothing,
    /// The newest table planned meanwhile.
    Reload {
        sectors: u64,
        params: String,
        udev: MapUdev,
        how: Suspend,
    },
    /// The map lost its last path meanwhile (the hardware names for its settings).
    Flush([String; 3]),
}

/// A load that took longer than this is logged: the owner did not wait, but the
/// admin should know a suspend waited for IO that long.
const SLOW_LOAD: std::time::Duration = std::time::Duration::from_secs(1);

impl Owner {
    /// Whether `map` has a reload running off this thread.
    pub(super) fn loading(&self, map: &str) -> bool {
        self.loads.contains_key(map)
    }

    /// Reloads `name`, or has the reload wait for the one in flight (replacing any
    /// table that waited before: the newest plan holds every change).
    pub(super) fn start_reload(
        &mut self,
        name: &str,
        sectors: u64,
        params: &str,
        udev: MapUdev,
        how: Suspend,
    ) -> Result<(), DmError> {
        if let Some(next) = self.loads.get_mut(name) {
            log::debug!("{name}: reload waits for the one in flight");
            *next = Next::Reload {
                sectors,
                params: params.to_string(),
                udev,
                how,
            };
            return Ok(());
        }
        if self.dm.reload_map(name, sectors, params, udev, how)? == Load::Running {
            self.note_running(name);
        }
        Ok(())
    }

    /// `map` has a load running off this thread (a reload, or a new map's udev wait):
    /// what comes for it meanwhile waits, and a command that started it is answered
    /// at its end.
    pub(super) fn note_running(&mut self, map: &str) {
        self.loads.insert(map.to_string(), Next::Nothing);
        if let Some(started) = self.command_loads.as_mut() {
            started.push(map.to_string());
        }
    }

    /// Suspend and resume would wait in the kernel behind the load's suspend: refused
    /// (EBUSY's reply) while one is in flight (a removal: `flush_map`).
    pub(super) fn refuse_while_loading(&self, map: &str) -> Result<(), HandlerError> {
        if self.loading(map) {
            log::warn!("{map}: busy: its reload (or udev's handling of its creation) is still in flight");
            return Err(HandlerError::Busy);
        }
        Ok(())
    }

    /// The flush of a map without paths, now or after its load in flight.
    pub(super) fn flush_after_load(&mut self, map: &str, hw: [String; 3]) -> bool {
        match self.loads.get_mut(map) {
            Some(next) => {
                log::info!("{map}: last path deleted; removing the map once its reload ended");
                *next = Next::Flush(hw);
                true
            }
            None => false,
        }
    }

    /// A reload that ran off this thread ended: what waited for it runs; when nothing
    /// does, the map's status is read and its paths checked at once, since the new
    /// table started every path active (a path failed meanwhile is failed again).
    pub fn on_load_done(&mut self, done: LoadDone) {
        let LoadDone {
            map,
            kind,
            result,
            took,
        } = done;
        match result {
            Ok(()) if kind == LoadKind::CreateUdev => {
                log::debug!("{map}: udev handled the new map in {:.1} s", took.as_secs_f64())
            }
            Ok(()) if took >= SLOW_LOAD => {
                log::info!(
                    "{map}: reload took {:.1} s (its suspend waited for IO in flight)",
                    took.as_secs_f64()
                )
            }
            Ok(()) => {}
            Err(e) => log::error!("{map}: reload failed, keeping the current table: {e}"),
        }
        let Some(next) = self.loads.remove(&map) else {
            return;
        };
        if !self.maps.contains_key(&map) {
            return;
        }
        match next {
            // udev's wait changed nothing in the kernel: the status and checks stand.
            Next::Nothing if kind == LoadKind::CreateUdev => return,
            Next::Nothing => {}
            Next::Reload {
                sectors,
                params,
                udev,
                how,
            } => {
                if let Err(e) = self.start_reload(&map, sectors, &params, udev, how) {
                    log::error!("{map}: reload failed, keeping the current table: {e}");
                }
                if self.loading(&map) {
                    return;
                }
            }
            Next::Flush(hw) => {
                self.flush_map_nopaths(&map, &hw);
                return;
            }
        }
        self.refresh_status(&map);
        let paths = self.maps.get(&map).map(|m| m.paths.clone()).unwrap_or_default();
        for d in paths {
            self.schedule_check(&d, 0);
        }
    }

    /// The maps whose reload the last CLI command sent off this thread.
    pub fn take_started_loads(&mut self) -> Vec<String> {
        self.command_loads.take().unwrap_or_default()
    }

    /// Whether any of `maps` still has a load in flight.
    pub fn any_loading(&self, maps: &[String]) -> bool {
        maps.iter().any(|m| self.loading(m))
    }
}
