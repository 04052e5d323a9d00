//! What happens on a CLI command.

use std::time::Instant;

use crate::checkers::state::{self as chk, DmState, PathState};
use crate::cli::format as fmt;
use crate::cli::parse::{Command, HandlerError};
use crate::config::propsel::Selector;
use crate::marginal::state::Event as MgEvent;

use super::{Map, Owner, Path, RemoveError, read_trimmed};

impl Owner {
    /// Answers one CLI command. An empty string means `ok`.
    pub fn on_command(&mut self, cmd: Command) -> Result<String, HandlerError> {
        // Group states (active/enabled) change with IO, without any event: read them
        // fresh for the commands that print them.
        if matches!(
            cmd,
            Command::ShowMapsTopology
                | Command::ShowMapTopology { .. }
                | Command::ShowMapsJson
                | Command::ShowMapJson { .. }
                | Command::ShowMapsStatus
                | Command::ShowMapFormat { .. }
                | Command::ShowMapsFormat { .. }
        ) {
            let names: Vec<String> = self.maps.keys().cloned().collect();
            for n in names {
                self.refresh_status(&n);
            }
        }
        // Listed in SCSI address order, as upstream's sysfs enumeration gives them.
        let paths = || {
            let mut v: Vec<&Path> = self.paths.values().collect();
            v.sort_by_key(|p| (p.info.hcil.host, p.info.hcil.channel, p.info.hcil.target, p.info.hcil.lun));
            v.into_iter().map(|p| self.path_view(p)).collect::<Vec<_>>()
        };
        let maps = || self.maps.values().map(|m| self.map_view(m)).collect::<Vec<_>>();
        match cmd {
            Command::ShowPaths => Ok(fmt::paths_table(&paths(), fmt::PATHS_FORMAT, false)),
            Command::ShowPathsFormat { fmt: f, raw } => Ok(fmt::paths_table(&paths(), &f, raw)),
            Command::ShowPath { path } => {
                let p = self.find_path(&path).ok_or(HandlerError::DeviceNotFound)?;
                Ok(fmt::path_line(&self.path_view(p), "%o"))
            }
            Command::ShowMaps => Ok(fmt::maps_table(&maps(), fmt::MAPS_FORMAT, false)),
            Command::ShowMapsFormat { fmt: f, raw } => Ok(fmt::maps_table(&maps(), &f, raw)),
            Command::ShowMapsStatus => Ok(fmt::maps_table(&maps(), fmt::MAPS_STATUS_FORMAT, false)),
            Command::ShowMapsStats => Ok(fmt::maps_table(&maps(), fmt::MAPS_STATS_FORMAT, false)),
            Command::ShowMapsTopology => Ok(fmt::topology(&maps(), &paths())),
            Command::ShowMapTopology { map } => {
                let m = self.find_map(&map).ok_or(HandlerError::DeviceNotFound)?;
                Ok(fmt::topology(&[self.map_view(m)], &paths()))
            }
            Command::ShowMapFormat { map, fmt: f } => {
                let m = self.find_map(&map).ok_or(HandlerError::DeviceNotFound)?;
                Ok(fmt::map_line(&self.map_view(m), &maps(), &f))
            }
            Command::ShowMapsJson => Ok(fmt::maps_json(&maps())),
            Command::ShowMapJson { map } => {
                let m = self.find_map(&map).ok_or(HandlerError::DeviceNotFound)?;
                Ok(fmt::map_json(&self.map_view(m)))
            }
            Command::ShowConfig { .. } => Ok(crate::config::dump::show_config(&self.cfg)),
            Command::ShowWildcards => Ok(fmt::wildcards()),
            Command::ShowMarginal => {
                let rows = self.marginal.statuses(Instant::now());
                let mut out = String::new();
                if !rows.is_empty() {
                    out.push_str(crate::marginal::status::header().trim_end());
                    out.push('\n');
                    for r in &rows {
                        out.push_str(crate::marginal::status::format_line(r).trim_end());
                        out.push('\n');
                    }
                }
                Ok(out)
            }
            Command::ShowStatus => {
                let states: Vec<fmt::CheckerState> = self.paths.values().map(|p| p.rec.state).collect();
                Ok(fmt::status(&states, self.paths.len(), false))
            }
            Command::ShowDaemon => Ok(fmt::daemon(std::process::id(), self.state, false)),
            Command::FailPath { path } => {
                let p = self.find_path(&path).ok_or(HandlerError::DeviceNotFound)?;
                let (dev, devt, map) = (p.info.dev.clone(), p.rec.dev_t.clone(), p.map.clone());
                let map = map.ok_or(HandlerError::Failed)?;
                self.dm.message(&map, &format!("fail_path {devt}")).map_err(|_| HandlerError::Failed)?;
                if let Some(p) = self.paths.get_mut(&dev) {
                    // Shown faulty until the next check finds it up and reinstates it.
                    p.rec.dm_state = DmState::Failed;
                    p.rec.state = PathState::Down;
                }
                self.refresh_status(&map);
                Ok(String::new())
            }
            Command::ReinstatePath { path } => {
                let p = self.find_path(&path).ok_or(HandlerError::DeviceNotFound)?;
                let (devt, map) = (p.rec.dev_t.clone(), p.map.clone());
                let map = map.ok_or(HandlerError::Failed)?;
                self.dm.message(&map, &format!("reinstate_path {devt}")).map_err(|_| HandlerError::Failed)?;
                self.refresh_status(&map);
                Ok(String::new())
            }
            Command::SwitchGroup { map, group } => {
                let name = self.find_map(&map).ok_or(HandlerError::DeviceNotFound)?.name.clone();
                let n: usize = group.parse().map_err(|_| HandlerError::Failed)?;
                self.dm.message(&name, &format!("switch_group {n}")).map_err(|_| HandlerError::Failed)?;
                self.refresh_status(&name);
                Ok(String::new())
            }
            Command::DisableQueueing { map } => self.queueing_cmd(map.as_deref(), false),
            Command::RestoreQueueing { map } => self.queueing_cmd(map.as_deref(), true),
            Command::AddPath { path } => {
                let dev = path.strip_prefix("/dev/").unwrap_or(&path).to_string();
                Ok(self.add_paths(&[dev]).unwrap_or_default())
            }
            Command::DelPath { path } => {
                let dev = self.find_path(&path).ok_or(HandlerError::DeviceNotFound)?.info.dev.clone();
                self.remove_paths(&[dev]);
                Ok(String::new())
            }
            Command::SetMarginal { path } => self.marginal_cmd(&path, true),
            Command::UnsetMarginal { path } => self.marginal_cmd(&path, false),
            Command::UnsetMarginalMap { map } => {
                let m = self.find_map(&map).ok_or(HandlerError::DeviceNotFound)?;
                let devs = m.paths.clone();
                for d in devs {
                    self.marginal_cmd(&d, false)?;
                }
                Ok(String::new())
            }
            Command::Resize { map } | Command::Reload { map } | Command::ResetMap { map } => {
                let name = self.find_map(&map).ok_or(HandlerError::DeviceNotFound)?.name.clone();
                self.resize(&name);
                Ok(String::new())
            }
            Command::AddMap { map } => {
                if self.find_map(&map).is_some() {
                    return Ok(String::new());
                }
                let devs: Vec<String> =
                    self.paths.values().filter(|p| p.info.wwid.as_deref() == Some(map.as_str())).map(|p| p.info.dev.clone()).collect();
                if devs.is_empty() {
                    return Err(HandlerError::DeviceNotFound);
                }
                self.setup_map(&map, devs, None);
                Ok(String::new())
            }
            Command::DelMap { map } => {
                let name = self.find_map(&map).ok_or(HandlerError::DeviceNotFound)?.name.clone();
                self.remove_map(&name)
            }
            Command::DelMaps => {
                let names: Vec<String> = self.maps.keys().cloned().collect();
                let mut result = Ok(String::new());
                for n in names {
                    if let Err(e) = self.remove_map(&n) {
                        result = Err(e);
                    }
                }
                result
            }
            Command::Suspend { map } => {
                let name = self.find_map(&map).ok_or(HandlerError::DeviceNotFound)?.name.clone();
                self.dm.suspend(&name).map_err(|_| HandlerError::Failed)?;
                Ok(String::new())
            }
            Command::Resume { map } => {
                let name = self.find_map(&map).ok_or(HandlerError::DeviceNotFound)?.name.clone();
                self.dm.resume(&name).map_err(|_| HandlerError::Failed)?;
                Ok(String::new())
            }
            Command::ResetMapsStats => {
                for m in self.maps.values_mut() {
                    reset_stats(m);
                }
                Ok(String::new())
            }
            Command::ResetMapStats { map } => {
                let name = self.find_map(&map).ok_or(HandlerError::DeviceNotFound)?.name.clone();
                if let Some(m) = self.maps.get_mut(&name) {
                    reset_stats(m);
                }
                Ok(String::new())
            }
            Command::GetPrStatus { map } => {
                let m = self.find_map(&map).ok_or(HandlerError::DeviceNotFound)?;
                Ok(if m.prstatus { "set\n" } else { "unset\n" }.to_string())
            }
            Command::SetPrStatus { map, .. } => self.pr_update(&map, |m| m.prstatus = true),
            Command::UnsetPrStatus { map } => self.pr_update(&map, |m| m.prstatus = false),
            Command::GetPrKey { map } => {
                let m = self.find_map(&map).ok_or(HandlerError::DeviceNotFound)?;
                let configured = self.reservation_key(m).filter(|k| k != "file").and_then(|k| normalize_prkey(&k));
                Ok(match m.prkey.clone().or(configured) {
                    Some(k) => format!("{k}\n"),
                    None => "none\n".to_string(),
                })
            }
            // Keys set at run time only make sense with `reservation_key file`, where the
            // prkeys file keeps them; otherwise the configuration owns the key.
            Command::SetPrKey { map, key } => {
                let m = self.find_map(&map).ok_or(HandlerError::DeviceNotFound)?;
                if self.reservation_key(m).as_deref() != Some("file") {
                    return Err(HandlerError::Failed);
                }
                let key = normalize_prkey(&key).ok_or(HandlerError::Failed)?;
                self.pr_update(&map, move |m| m.prkey = Some(key))
            }
            // Clearing a run-time key is harmless whatever the configuration says.
            Command::UnsetPrKey { map } => self.pr_update(&map, |m| m.prkey = None),
            Command::GetPrHold { map } => {
                let m = self.find_map(&map).ok_or(HandlerError::DeviceNotFound)?;
                Ok(if m.prhold { "set\n" } else { "unset\n" }.to_string())
            }
            Command::SetPrHold { map } => self.pr_update(&map, |m| m.prhold = true),
            Command::UnsetPrHold { map } => self.pr_update(&map, |m| m.prhold = false),
            Command::ForceQueueingDaemon | Command::RestoreQueueingDaemon => Ok(String::new()),
            Command::Quit => Ok(String::new()),
            Command::ShowBlacklist => Ok(fmt::blacklist(&self.blacklist_view())),
            Command::ShowDevices => Ok(fmt::devices(&self.devices())),
            // Answered by the run loop before they get here.
            Command::Shutdown | Command::Reconfigure { .. } => Ok(String::new()),
        }
    }

    fn reservation_key(&self, m: &Map) -> Option<String> {
        Selector::new(&self.cfg, "", "", "", &m.wwid).reservation_key().map(|s| s.value)
    }

    fn pr_update(&mut self, map: &str, f: impl FnOnce(&mut Map)) -> Result<String, HandlerError> {
        let name = self.find_map(map).ok_or(HandlerError::DeviceNotFound)?.name.clone();
        if let Some(m) = self.maps.get_mut(&name) {
            f(m);
        }
        Ok(String::new())
    }

    fn marginal_cmd(&mut self, path: &str, set: bool) -> Result<String, HandlerError> {
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

    fn queueing_cmd(&mut self, map: Option<&str>, restore: bool) -> Result<String, HandlerError> {
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

    /// `resize map`: the paths' current size from sysfs, then a reload.
    fn resize(&mut self, name: &str) {
        let Some(m) = self.maps.get(name) else { return };
        let devs = m.paths.clone();
        for d in &devs {
            let size = read_trimmed(&self.env.sysfs.sys("block").join(d).join("size")).and_then(|s| s.parse().ok());
            if let (Some(p), Some(size)) = (self.paths.get_mut(d), size) {
                p.info.size = size;
            }
        }
        let sectors = devs.iter().filter_map(|d| self.paths.get(d)).map(|p| p.info.size).max();
        if let (Some(m), Some(sectors)) = (self.maps.get_mut(name), sectors) {
            if sectors != m.sectors {
                log::info!("{name}: size {} -> {sectors} sectors", m.sectors);
            }
            m.sectors = sectors;
        }
        self.reload(name);
    }

    fn remove_map(&mut self, name: &str) -> Result<String, HandlerError> {
        match self.dm.remove_map(name) {
            Ok(()) => {
                log::info!("{name}: map removed");
                if let Some(m) = self.maps.remove(name) {
                    for d in m.paths {
                        if let Some(p) = self.paths.get_mut(&d) {
                            p.map = None;
                        }
                    }
                }
                Ok(String::new())
            }
            Err(RemoveError::Busy) => Err(HandlerError::Busy),
            Err(RemoveError::Failed(e)) => {
                log::warn!("{name}: remove failed: {e}");
                Err(HandlerError::Failed)
            }
        }
    }
}

fn reset_stats(m: &mut Map) {
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
    let value = u64::from_str_radix(digits, 16).ok().filter(|_| !digits.is_empty() && digits.len() <= 16)?;
    Some(format!("0x{value:x}{}", if aptpl { ":aptpl" } else { "" }))
}
