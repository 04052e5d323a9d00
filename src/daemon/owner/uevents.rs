//! What happens on a uevent: dm path failures feed the marginal module, block
//! add/remove change the path list.

use std::time::Instant;

use crate::checkers::state::{DmState, PathState};
use crate::config::propsel::Selector;
use crate::marginal::state::Event as MgEvent;

use super::Owner;

impl Owner {
    /// A batch of queued uevents: filtered and merged first, so a storm of path adds
    /// for one LUN becomes one map reload.
    pub fn on_uevents(&mut self, batch: Vec<crate::uevent::Uevent>) {
        // (the names, before the batch is merged away)
        let block_devices: Vec<String> = batch
            .iter()
            .filter_map(super::devices::block_device_named)
            .map(str::to_owned)
            .collect();
        let bl = self.blacklist();
        // dm-N events carry path failures of our maps: the devnode blacklist is for paths.
        let is_blacklisted = |name: &str| !name.starts_with("dm-") && bl.filter_devnode(name) > 0;
        let cfg = &self.cfg;
        let wwid_of = |e: &crate::uevent::Uevent| {
            let attr = Selector::new(cfg, "", "", "", "").uid_attribute(e.kernel_name()).value;
            e.get(&attr).filter(|w| !w.is_empty()).map(str::to_owned)
        };
        for entry in crate::uevent::merge_batch(batch, &is_blacklisted, &wwid_of) {
            if entry.merged.is_empty() {
                self.on_uevent(entry.uevent);
                continue;
            }
            let devs: Vec<String> = entry.all().filter_map(|e| e.devname.clone()).collect();
            log::debug!(
                "{} merged {} uevents: {}",
                entry.uevent.action,
                devs.len(),
                devs.join(" ")
            );
            match entry.uevent.action.as_str() {
                "add" => {
                    self.add_paths(&devs);
                }
                "remove" => {
                    self.remove_paths(&devs);
                }
                _ => {}
            }
        }
        self.update_block_devices(&bl, block_devices.iter().map(String::as_str));
    }

    /// DM reported the failure of a path the `fail path` command failed: counted as a
    /// path fault if the kernel still has it failed (upstream's update_multipath counts
    /// the paths DM shows failed whose checker state was not down yet).
    fn count_commanded_failure(&mut self, map: &str, dev: &str) {
        let Some(p) = self.paths.get_mut(dev) else { return };
        let counted = std::mem::take(&mut p.fail_uncounted) && p.rec.dm_state == DmState::Failed;
        if counted && let Some(m) = self.maps.get_mut(map) {
            m.rec.stat_path_failures += 1;
            self.touch_map(map);
        }
    }

    /// A kernel uevent: dm path failures feed the marginal module; block add/remove
    /// change the path list.
    pub fn on_uevent(&mut self, ev: crate::uevent::Uevent) {
        if let Some(action) = ev.dm_action() {
            let map = action.map_name.clone().unwrap_or_default();
            let devt = action.path.clone();
            let dev = self.path_by_devt(&devt).map(|p| p.info.dev.clone());
            log::debug!("{map}: uevent {:?} for {devt}", action.action);
            if let (Some(dev), crate::uevent::DmPathAction::PathFailed) = (dev, action.action) {
                let others = self.active_paths_except(&map, Some(&dev));
                let path_down = self.paths.get(&dev).is_some_and(|p| p.rec.state == PathState::Down);
                let acts = self.marginal.handle(
                    MgEvent::PathFailed {
                        path: dev.clone(),
                        map: map.clone(),
                        other_active_paths: others,
                        path_down,
                    },
                    Instant::now(),
                );
                if let Some(p) = self.paths.get_mut(&dev) {
                    p.rec.dm_state = DmState::Failed;
                }
                self.touch_path(&dev);
                self.apply_marginal(acts);
                self.schedule_check(&dev, 0);
                self.refresh_status(&map);
                self.count_commanded_failure(&map, &dev);
                return;
            }
            self.refresh_status(&map);
            return;
        }
        if ev.subsystem.as_deref() != Some("block") {
            return;
        }
        let Some(dev) = ev.devname.clone() else {
            return;
        };
        if dev.starts_with("dm-") {
            self.on_dm_uevent(&dev, &ev);
            return;
        }
        match ev.action.as_str() {
            // udev's `change` completes a path that waited for its properties
            "add" | "change" if !self.paths.contains_key(&dev) => {
                self.add_paths(&[dev]);
            }
            "remove" => {
                self.remove_paths(&[dev]);
            }
            "change" => self.auto_resize(&dev),
            _ => {}
        }
    }

    /// A dm device changed or went away. Maps made or removed by someone else, such as
    /// the `multipath` tool, are taken in or dropped as upstream does: a multipath map we
    /// do not know is adopted when it is resumed (`change`), a map of ours that is removed
    /// is forgotten and its paths become orphans. Our own creations and removals find the
    /// records already as the event says.
    fn on_dm_uevent(&mut self, dev: &str, ev: &crate::uevent::Uevent) {
        match ev.action.as_str() {
            "change" => {
                let dm = self.env.sysfs.sys("block").join(dev).join("dm");
                let name = ev
                    .get("DM_NAME")
                    .map(str::to_owned)
                    .or_else(|| super::read_trimmed(&dm.join("name")));
                let uuid = ev
                    .get("DM_UUID")
                    .map(str::to_owned)
                    .or_else(|| super::read_trimmed(&dm.join("uuid")));
                let (Some(name), Some(wwid)) = (name, uuid.as_deref().and_then(|u| u.strip_prefix("mpath-"))) else {
                    return;
                };
                if self.maps.contains_key(&name) || self.maps.values().any(|m| m.wwid == wwid) {
                    self.refresh_status(&name);
                    return;
                }
                let existing = match self.dm.list_maps() {
                    Ok(maps) => maps.into_iter().find(|m| m.name == name),
                    Err(e) => {
                        log::warn!("{name}: cannot read the new map: {e}");
                        return;
                    }
                };
                let Some(existing) = existing else { return };
                log::info!("{name}: map created by another program ({wwid})");
                let devs = self.paths_of_wwid(wwid);
                self.setup_map(wwid, devs, Some(existing));
            }
            "remove" => {
                let minor = ev.get("MINOR").and_then(|m| m.parse::<u32>().ok());
                let Some(name) = self
                    .maps
                    .values()
                    .find(|m| Some(m.minor) == minor && ev.get("DM_NAME").is_none_or(|n| n == m.name))
                    .map(|m| m.name.clone())
                else {
                    return;
                };
                // The minor may belong to a map made since: only a map that is gone is dropped.
                match self.dm.status(&name) {
                    Err(e) if e.errno() == Some(nix::errno::Errno::ENXIO) => {
                        log::info!("{name}: map removed by another program");
                        self.forget_map(&name);
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }
}
