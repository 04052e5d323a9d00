//! What happens on a CLI command. `on_command` is the one table that ties each command
//! to its handler, as upstream's cli_handlers.c; the handlers follow in the table's
//! order: `show`, paths, maps, persistent reservations, the daemon.

use std::time::Instant;

use crate::checkers::state::{self as chk, DmState, PathState};
use crate::cli::parse::{Command, HandlerError};
use crate::cli::snapshot::prints_group_states;
use crate::config::propsel::Selector;
use crate::marginal::state::Event as MgEvent;

use crate::dm::Suspend;
use crate::dm::table::MultipathTable;

use super::maps::FlushError;
use super::reservations::{PrValue, format_key, parse_key};
use super::{Map, Owner, read_trimmed};

/// A command's answer: the text for the client (empty means `ok`) or the error it sees.
type Answer = Result<String, HandlerError>;

impl Owner {
    /// Answers one CLI command. An empty string means `ok`. The reloads it starts off
    /// this thread are recorded for [`Owner::take_started_loads`].
    pub fn on_command(&mut self, cmd: Command) -> Answer {
        self.command_loads = Some(Vec::new());
        self.dispatch(cmd)
    }

    fn dispatch(&mut self, cmd: Command) -> Answer {
        match cmd {
            show @ (Command::ShowPaths
            | Command::ShowPathsFormat { .. }
            | Command::ShowPath { .. }
            | Command::ShowMaps
            | Command::ShowMapsFormat { .. }
            | Command::ShowMapsStatus
            | Command::ShowMapsStats
            | Command::ShowMapsTopology
            | Command::ShowMapTopology { .. }
            | Command::ShowMapFormat { .. }
            | Command::ShowMapsJson
            | Command::ShowMapJson { .. }
            | Command::ShowConfig { .. }
            | Command::ShowWildcards
            | Command::ShowMarginal
            | Command::ShowMarginalJson
            | Command::ShowStatus
            | Command::ShowDaemon
            | Command::ShowBlacklist
            | Command::ShowDevices) => self.show(&show),

            Command::AddPath { path } => Ok(self.add_path(&path)),
            Command::DelPath { path } => self.del_path(&path),
            Command::FailPath { path } => self.fail_path(&path),
            Command::ReinstatePath { path } => self.reinstate_path(&path),
            Command::SetMarginal { path } => self.marginal_cmd(&path, true),
            Command::UnsetMarginal { path } => self.marginal_cmd(&path, false),
            Command::UnsetMarginalMap { map } => self.unset_marginal_map(&map),

            Command::AddMap { map } => self.add_map(&map),
            Command::DelMap { map } => self.del_map(&map),
            Command::DelMaps => self.del_maps(),
            Command::SwitchGroup { map, group } => self.switch_group(&map, &group),
            Command::Resize { map } => self.resize(&map),
            Command::Reload { map } => self.reload_cmd(&map, true),
            Command::ResetMap { map } => self.reload_cmd(&map, false),
            Command::Suspend { map } => self.suspend(&map),
            Command::Resume { map } => self.resume(&map),
            Command::DisableQueueing { map } => self.queueing_cmd(map.as_deref(), false),
            Command::RestoreQueueing { map } => self.queueing_cmd(map.as_deref(), true),
            Command::ResetMapsStats => self.reset_maps_stats(),
            Command::ResetMapStats { map } => self.reset_map_stats(&map),

            Command::GetPrStatus { map } => self.get_pr_value(&map, |m| m.prflag),
            Command::SetPrStatus { map, .. } => self.set_pr_status_cmd(&map),
            Command::UnsetPrStatus { map } => self.pr_update(&map, |m| {
                m.prflag = PrValue::Unset;
                m.prhold = PrValue::Unset;
            }),
            Command::GetPrKey { map } => self.get_pr_key(&map),
            Command::SetPrKey { map, key } => self.set_pr_key(&map, &key),
            // Clearing a run-time key is harmless whatever the configuration says.
            Command::UnsetPrKey { map } => self.unset_pr_key(&map),
            Command::GetPrHold { map } => self.get_pr_value(&map, |m| m.prhold),
            Command::SetPrHold { map } => self.pr_update(&map, |m| m.prhold = PrValue::Set),
            Command::UnsetPrHold { map } => self.pr_update(&map, |m| m.prhold = PrValue::Unset),

            Command::Reconfigure { all } => self.reconfigure_cmd(all),
            Command::Shutdown => self.shutdown_cmd(),
            Command::ForceQueueingDaemon => self.force_queueing_daemon(true),
            Command::RestoreQueueingDaemon => self.force_queueing_daemon(false),
            Command::Quit => Ok(String::new()),
        }
    }

    /// The name of the map `key` (name, WWID, dm-N or /dev/dm-N) designates.
    fn map_name(&self, key: &str) -> Result<String, HandlerError> {
        Ok(self.find_map(key).ok_or(HandlerError::DeviceNotFound)?.name.clone())
    }

    // ---- show ----------------------------------------------------------------

    /// A list/show command, answered from a snapshot of the views as the CLI server
    /// answers it in the daemon; group states are read fresh first.
    fn show(&mut self, cmd: &Command) -> Answer {
        if prints_group_states(cmd) {
            self.refresh_all_status();
        }
        self.snapshot().answer(cmd).unwrap_or(Err(HandlerError::Failed))
    }

    // ---- paths -----------------------------------------------------------------

    /// `add path`: the reply is why the path was not added (blacklisted), else `ok`.
    /// A known path outside any map is added again, as upstream's cli_add_path hands it
    /// to ev_add_path: find_multipaths is asked anew, so os-brick's `multipath -a WWID`
    /// then `add path` creates the map of paths that stayed orphans until then.
    fn add_path(&mut self, path: &str) -> String {
        let dev = path.strip_prefix("/dev/").unwrap_or(path).to_string();
        if let Some(p) = self.paths.get(&dev) {
            if p.map.is_none()
                && let Some(wwid) = p.info.wwid.clone()
            {
                self.assemble([wwid]);
            }
            return String::new();
        }
        self.add_paths(&[dev]).unwrap_or_default()
    }

    fn del_path(&mut self, path: &str) -> Answer {
        let dev = self
            .find_path(path)
            .ok_or(HandlerError::DeviceNotFound)?
            .info
            .dev
            .clone();
        self.remove_paths(&[dev]);
        Ok(String::new())
    }

    fn fail_path(&mut self, path: &str) -> Answer {
        let p = self.find_path(path).ok_or(HandlerError::DeviceNotFound)?;
        let (dev, devt, map) = (p.info.dev.clone(), p.rec.dev_t.clone(), p.map.clone());
        let map = map.ok_or(HandlerError::Failed)?;
        self.dm
            .message(&map, &format!("fail_path {devt}"))
            .map_err(|_| HandlerError::Failed)?;
        if let Some(p) = self.paths.get_mut(&dev) {
            // Shown faulty until the next check finds it up and reinstates it; a failure
            // the checker had not seen is counted when DM's PATH_FAILED event is handled,
            // as upstream counts it (`on_uevent`).
            p.rec.dm_state = DmState::Failed;
            p.fail_uncounted |= p.rec.state != PathState::Down;
            p.rec.state = PathState::Down;
        }
        self.refresh_status(&map);
        Ok(String::new())
    }

    fn reinstate_path(&mut self, path: &str) -> Answer {
        let p = self.find_path(path).ok_or(HandlerError::DeviceNotFound)?;
        let (devt, map) = (p.rec.dev_t.clone(), p.map.clone());
        let map = map.ok_or(HandlerError::Failed)?;
        self.dm
            .message(&map, &format!("reinstate_path {devt}"))
            .map_err(|_| HandlerError::Failed)?;
        self.refresh_status(&map);
        Ok(String::new())
    }

    fn marginal_cmd(&mut self, path: &str, set: bool) -> Answer {
        let p = self.find_path(path).ok_or(HandlerError::DeviceNotFound)?;
        let (dev, dev_t) = (p.info.dev.clone(), p.rec.dev_t.clone());
        let map = p.map.clone().ok_or(HandlerError::Failed)?;
        let ev = if set {
            MgEvent::SetMarginal { path: dev, map, dev_t }
        } else {
            MgEvent::UnsetMarginal { path: dev, map, dev_t }
        };
        let acts = self.marginal.handle(ev, Instant::now());
        self.apply_marginal(acts);
        Ok(String::new())
    }

    fn unset_marginal_map(&mut self, map: &str) -> Answer {
        let m = self.find_map(map).ok_or(HandlerError::DeviceNotFound)?;
        let devs = m.paths.clone();
        for d in devs {
            self.marginal_cmd(&d, false)?;
        }
        Ok(String::new())
    }

    // ---- maps ------------------------------------------------------------------

    /// `add map`: a map over the known paths with that WWID.
    fn add_map(&mut self, map: &str) -> Answer {
        if self.find_map(map).is_some() {
            return Ok(String::new());
        }
        let devs = self.paths_of_wwid(map);
        if devs.is_empty() {
            return Err(HandlerError::DeviceNotFound);
        }
        self.setup_map(map, devs, None);
        Ok(String::new())
    }

    fn del_map(&mut self, map: &str) -> Answer {
        let name = self.map_name(map)?;
        log::info!("{name}: remove map (operator)");
        self.remove_map(&name, true)
            .map(|()| String::new())
            .map_err(|e| match e {
                FlushError::Busy => HandlerError::Busy,
                FlushError::Failed => HandlerError::Failed,
            })
    }

    /// `del maps`: every map it can, then the multipath maps the daemon does not know
    /// (blacklisted, made by hand), as upstream; `fail` if one failed, else `busy` if
    /// one was in use.
    fn del_maps(&mut self) -> Answer {
        log::info!("remove maps (operator)");
        let names: Vec<String> = self.maps.keys().cloned().collect();
        let (mut busy, mut failed) = (false, false);
        let mut note = |r: Result<(), FlushError>| match r {
            Ok(()) => {}
            Err(FlushError::Busy) => busy = true,
            Err(FlushError::Failed) => failed = true,
        };
        for n in names {
            note(self.remove_map(&n, true));
        }
        match self.dm.list_maps() {
            Ok(maps) => {
                let unknown: Vec<_> = maps.into_iter().filter(|m| !self.maps.contains_key(&m.name)).collect();
                for m in unknown {
                    let queues = MultipathTable::parse(&m.table)
                        .is_ok_and(|t| t.features.iter().any(|f| f == "queue_if_no_path"));
                    note(self.flush_map(&m.name, true, queues));
                }
            }
            Err(e) => {
                log::error!("cannot list device-mapper maps: {e}");
                failed = true;
            }
        }
        match (failed, busy) {
            (true, _) => Err(HandlerError::Failed),
            (false, true) => Err(HandlerError::Busy),
            (false, false) => Ok(String::new()),
        }
    }

    /// Removes a known map from the kernel (`flush_map`; `suspend` for the commands) and
    /// forgets it.
    pub(super) fn remove_map(&mut self, name: &str, suspend: bool) -> Result<(), FlushError> {
        let queues = self.maps.get(name).is_some_and(|m| m.rec.queueing);
        match self.flush_map(name, suspend, queues) {
            Ok(()) => {
                log::info!("{name}: map removed");
                self.forget_map(name);
                Ok(())
            }
            Err(e) => {
                log::error!("{name}: can't flush");
                Err(e)
            }
        }
    }

    fn switch_group(&mut self, map: &str, group: &str) -> Answer {
        let name = self.map_name(map)?;
        let n: usize = group.parse().map_err(|_| HandlerError::Failed)?;
        self.dm
            .message(&name, &format!("switch_group {n}"))
            .map_err(|_| HandlerError::Failed)?;
        self.refresh_status(&name);
        Ok(String::new())
    }

    fn suspend(&mut self, map: &str) -> Answer {
        let name = self.map_name(map)?;
        self.refuse_while_loading(&name)?;
        self.dm
            .suspend(&name, Suspend::KEEP_IO)
            .map_err(|_| HandlerError::Failed)?;
        self.set_suspended(&name, true);
        Ok(String::new())
    }

    fn resume(&mut self, map: &str) -> Answer {
        let name = self.map_name(map)?;
        self.refuse_while_loading(&name)?;
        let udev = crate::dm::MapUdev {
            skip_kpartx: self.map_skip_kpartx(&name),
            ..Default::default()
        };
        self.dm.resume(&name, udev).map_err(|_| HandlerError::Failed)?;
        self.set_suspended(&name, false);
        Ok(String::new())
    }

    fn set_suspended(&mut self, name: &str, suspended: bool) {
        if let Some(m) = self.maps.get_mut(name) {
            m.suspended = suspended;
        }
        self.touch_map(name);
    }

    fn queueing_cmd(&mut self, map: Option<&str>, restore: bool) -> Answer {
        let names: Vec<String> = match map {
            Some(k) => vec![self.find_map(k).ok_or(HandlerError::DeviceNotFound)?.name.clone()],
            None => self.maps.keys().cloned().collect(),
        };
        for n in names {
            let active = self.active_paths(&n);
            let Some(m) = self.maps.get(&n) else { continue };
            let (rec, acts) = if restore {
                chk::restore_queueing(&m.rec, active, &m.policy)
            } else {
                chk::disable_queueing(&m.rec, active)
            };
            if let Some(m) = self.maps.get_mut(&n) {
                m.rec = rec;
            }
            self.apply_checker_actions(&n, acts);
        }
        Ok(String::new())
    }

    /// `forcequeueing daemon` / `restorequeueing daemon`: whether the maps keep
    /// queueing when the daemon stops, whatever `queue_without_daemon` says.
    fn force_queueing_daemon(&mut self, force: bool) -> Answer {
        let what = if force { "force" } else { "restore" };
        log::info!("{what} queue_without_daemon (operator)");
        self.queue_without_daemon_forced = force;
        Ok(String::new())
    }

    /// `resize map`, as upstream's cli_resize: every path's size is read again from
    /// sysfs; they must agree (`fail` when they differ or none has a size, as after a
    /// rescan of only some paths); the map's own size is `ok` with nothing loaded;
    /// another one is loaded with the new size (queued IO flushed), and udev told to
    /// treat the map as new.
    fn resize(&mut self, map: &str) -> Answer {
        let name = self.map_name(map)?;
        let size = match self.read_path_sizes(&name) {
            Ok(Some(s)) => s,
            Ok(None) => {
                log::error!("{name}: couldn't get size from sysfs. cannot resize");
                return Err(HandlerError::Failed);
            }
            Err(()) => {
                log::error!("{name}: path size not consistent. cannot resize");
                return Err(HandlerError::Failed);
            }
        };
        let Some(m) = self.maps.get_mut(&name) else {
            return Err(HandlerError::DeviceNotFound);
        };
        if size == m.sectors {
            log::info!("{name}: map is still the same size ({size})");
            return Ok(String::new());
        }
        log::info!("{name}: size {} -> {size} sectors (operator)", m.sectors);
        m.sectors = size;
        m.force_udev_reload = true;
        m.resized = true;
        self.reload(&name);
        Ok(String::new())
    }

    /// `reload map` and `reset map`: the map's table loaded again, its size taken from the
    /// largest of its paths. `rescan` (reload, as upstream): udev is told to treat the
    /// reloaded map as new.
    fn reload_cmd(&mut self, map: &str, rescan: bool) -> Answer {
        let name = self.map_name(map)?;
        let devs = self.maps.get(&name).map(|m| m.paths.clone()).unwrap_or_default();
        for d in &devs {
            let size = read_trimmed(&self.env.sysfs.sys("block").join(d).join("size")).and_then(|s| s.parse().ok());
            if let (Some(p), Some(size)) = (self.paths.get_mut(d), size) {
                p.info.size = size;
            }
        }
        let sectors = devs.iter().filter_map(|d| self.paths.get(d)).map(|p| p.info.size).max();
        if let (Some(m), Some(sectors)) = (self.maps.get_mut(&name), sectors) {
            if sectors != m.sectors {
                log::info!("{name}: size {} -> {sectors} sectors", m.sectors);
            }
            m.sectors = sectors;
        }
        if let Some(m) = self.maps.get_mut(&name) {
            m.force_udev_reload = rescan;
        }
        self.reload(&name);
        Ok(String::new())
    }

    fn reset_maps_stats(&mut self) -> Answer {
        for m in self.maps.values_mut() {
            reset_stats(m);
        }
        Ok(String::new())
    }

    fn reset_map_stats(&mut self, map: &str) -> Answer {
        let name = self.map_name(map)?;
        if let Some(m) = self.maps.get_mut(&name) {
            reset_stats(m);
        }
        Ok(String::new())
    }

    // ---- persistent reservations -------------------------------------------------

    /// `getprstatus` and `getprhold`: `unknown` until a registration of a map with a
    /// key has found out, as upstream 0.14.3 (0.9.4 printed the status as 0 or 1).
    fn get_pr_value(&self, map: &str, value: impl FnOnce(&Map) -> PrValue) -> Answer {
        let m = self.find_map(map).ok_or(HandlerError::DeviceNotFound)?;
        Ok(value(m).reply().to_string())
    }

    fn get_pr_key(&self, map: &str) -> Answer {
        let m = self.find_map(map).ok_or(HandlerError::DeviceNotFound)?;
        Ok(match self.map_prkey(m) {
            Some(k) => format!("{k}\n"),
            None => "none\n".to_string(),
        })
    }

    /// The map's reservation key: set at run time (`reservation_key file`) or configured.
    fn map_prkey(&self, m: &Map) -> Option<String> {
        let configured = self
            .reservation_key(m)
            .filter(|k| k != "file")
            .and_then(|k| normalize_prkey(&k));
        m.prkey.clone().or(configured)
    }

    /// Keys set at run time only make sense with `reservation_key file`, where the
    /// prkeys file keeps them; otherwise the configuration owns the key.
    fn set_pr_key(&mut self, map: &str, key: &str) -> Answer {
        let m = self.find_map(map).ok_or(HandlerError::DeviceNotFound)?;
        if self.reservation_key(m).as_deref() != Some("file") {
            return Err(HandlerError::Failed);
        }
        let key = normalize_prkey(key).ok_or(HandlerError::Failed)?;
        let parsed = parse_key(&key);
        if let Err(e) = self.prkeys_file().set(&m.wwid, parsed) {
            log::error!("{}: cannot write the prkeys file: {e}", m.name);
            return Err(HandlerError::Failed);
        }
        self.pr_update(map, move |m| m.prkey = parsed.map(|(k, a)| format_key(k, a)))
    }

    /// With `reservation_key file`, the key is forgotten in the prkeys file too.
    fn unset_pr_key(&mut self, map: &str) -> Answer {
        let m = self.find_map(map).ok_or(HandlerError::DeviceNotFound)?;
        if self.reservation_key(m).as_deref() == Some("file")
            && let Err(e) = self.prkeys_file().set(&m.wwid, None)
        {
            log::error!("{}: cannot write the prkeys file: {e}", m.name);
            return Err(HandlerError::Failed);
        }
        self.pr_update(map, |m| m.prkey = None)
    }

    /// `setprstatus` (with or without the paths mpathpersist registered: every
    /// usable path registers again, which changes nothing on those).
    /// `setprstatus`: the usable paths register the key. As upstream, a map without a
    /// reservation key has nothing to register: with a usable path the status (and the
    /// hold) are cleared again at once; without one it stays set until a path comes up.
    fn set_pr_status_cmd(&mut self, map: &str) -> Answer {
        let m = self.find_map(map).ok_or(HandlerError::DeviceNotFound)?;
        let name = m.name.clone();
        let keyless = self.map_key(m).is_none();
        let usable = m.paths.iter().any(|d| {
            self.paths
                .get(d)
                .is_some_and(|p| matches!(p.rec.state, PathState::Up | PathState::Ghost))
        });
        self.set_pr_status(&name);
        if keyless
            && usable
            && let Some(m) = self.maps.get_mut(&name)
        {
            m.prflag = PrValue::Unset;
            m.prhold = PrValue::Unset;
        }
        Ok(String::new())
    }

    fn pr_update(&mut self, map: &str, f: impl FnOnce(&mut Map)) -> Answer {
        let name = self.find_map(map).ok_or(HandlerError::DeviceNotFound)?.name.clone();
        if let Some(m) = self.maps.get_mut(&name) {
            f(m);
        }
        Ok(String::new())
    }

    pub(super) fn reservation_key(&self, m: &Map) -> Option<String> {
        Selector::new(&self.cfg, "", "", "", &m.wwid)
            .reservation_key()
            .map(|s| s.value)
    }

    // ---- the daemon ------------------------------------------------------------

    /// `reconfigure`: `ok` once the load has started, as upstream answers once it is
    /// scheduled; a configuration that does not load is logged and changes nothing.
    /// `reconfigure` and `reconfigure all`; an `all` still pending when a plain one
    /// follows stays in force, as upstream merges them.
    fn reconfigure_cmd(&mut self, all: bool) -> Answer {
        log::info!("reconfigure{} (operator)", if all { " all" } else { "" });
        self.reconfigure_all |= all;
        self.reread_config();
        Ok(String::new())
    }

    /// `shutdown`: answered, then the run loop ends.
    fn shutdown_cmd(&mut self) -> Answer {
        self.shutdown();
        Ok(String::new())
    }
}

pub(super) fn reset_stats(m: &mut Map) {
    m.rec.stat_path_failures = 0;
    m.rec.stat_map_failures = 0;
    m.rec.stat_queueing_timeouts = 0;
    m.rec.stat_total_queueing_time = 0;
    m.rec.stat_switch_group = 0;
    m.loads = 0;
}

/// A reservation key as `getprkey` prints it: `0x<hex>` (16 digits at most), with an
/// optional `:aptpl`. `None` for anything else.
fn normalize_prkey(key: &str) -> Option<String> {
    let (hex, aptpl) = match key.strip_suffix(":aptpl") {
        Some(h) => (h, true),
        None => (key, false),
    };
    let digits = hex.strip_prefix("0x").or_else(|| hex.strip_prefix("0X")).unwrap_or(hex);
    let value = u64::from_str_radix(digits, 16)
        .ok()
        .filter(|_| !digits.is_empty() && digits.len() <= 16)?;
    Some(format!("0x{value:x}{}", if aptpl { ":aptpl" } else { "" }))
}
