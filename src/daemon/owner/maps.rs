//! Maps: naming, planning and loading the `multipath` table, status refresh,
//! removal.

use std::collections::BTreeSet;

use crate::checkers::state::{self as chk, DmState, PathState};
use crate::cli::format::DaemonState;
use crate::config::keywords::Setting;
use crate::config::propsel::Selector;
use crate::daemon::adopt::{self, Action};
use crate::discovery;
use crate::dm::status::MultipathStatus;
use crate::dm::table::MultipathTable;
use crate::dm::{DmError, MapUdev, Suspend};
use nix::errno::Errno;

use super::reservations::PrValue;
use super::{ExistingMap, Load, Map, NewMap, Owner, PartitionMap, Path};
use crate::daemon::plan::{self, MapPlan, PlanPath};
use crate::daemon::policy;

impl Owner {
    pub(super) fn should_multipath(&self, wwid: &str, npaths: usize) -> bool {
        let mode = self
            .cfg
            .setting_str(Setting::FindMultipaths)
            .and_then(|v| discovery::valid::FindMultipaths::from_value(&v))
            .unwrap_or(discovery::valid::FindMultipaths::Strict);
        let known = discovery::wwids::WwidsFile::new(self.env.state_dir.join("wwids"))
            .load()
            .map(|w| w.contains(wwid))
            .unwrap_or(false);
        let exists = self.maps.values().any(|m| m.wwid == wwid);
        discovery::valid::should_multipath(mode, known, exists, npaths.saturating_sub(1))
    }

    fn alias_for(&self, wwid: &str) -> String {
        let sel = Selector::new(&self.cfg, "", "", "", wwid);
        if let Some(a) = sel.alias() {
            return a.value;
        }
        if !sel.user_friendly_names().value {
            return wwid.to_string();
        }
        let file = discovery::bindings::BindingsFile::new(self.env.state_dir.join("bindings"));
        let taken =
            |name: &str| self.maps.contains_key(name) || self.kernel_maps.iter().any(|(n, w)| n == name && w != wwid);
        let resolved = if self.env.bindings_read_only {
            file.bound(wwid)
        } else {
            file.alias_for(wwid, &sel.alias_prefix().value, None, &taken)
        };
        match resolved {
            Ok((Some((alias, _)), issues)) => {
                for i in issues {
                    log::warn!("{i}");
                }
                alias
            }
            Ok((None, _)) => wwid.to_string(),
            Err(e) => {
                log::warn!("{wwid}: cannot allocate a user friendly name: {e}; using the WWID");
                wwid.to_string()
            }
        }
    }

    fn plan_paths(&self, devs: &[String]) -> Vec<PlanPath> {
        devs.iter()
            .filter_map(|d| self.paths.get(d))
            .map(|p| PlanPath {
                dev: p.info.dev.clone(),
                devt: p.rec.dev_t.clone(),
                vendor: p.info.vendor.clone(),
                product: p.info.product.clone(),
                rev: p.info.rev.clone(),
                serial: p.info.serial.clone(),
                tgt_node_name: p.info.tgt_node_name.clone(),
                tpg: None,
                prio: p.prio,
                prio_name: p.prio_name.clone(),
                usable: p.rec.state != PathState::Down && p.info.state != "offline",
                marginal: p.rec.marginal,
                dh_state: p.dh_state.clone(),
            })
            .collect()
    }

    /// Creates, reloads or adopts the map for `wwid` over `devs`.
    pub(super) fn setup_map(&mut self, wwid: &str, devs: Vec<String>, existing: Option<ExistingMap>) {
        if let Some(p) = self.plan_setup(wwid, devs, existing) {
            self.setup_planned(p);
        }
    }

    /// Creates the maps of `planned`, none of which is in the kernel, as one batch of the
    /// port (side by side: start-up's creates). A name planned twice (an alias given to
    /// two WWIDs) is created after the batch, so the first WWID in order gets it, as when
    /// the maps were created in turn.
    pub(super) fn create_planned(&mut self, planned: Vec<Planned>) {
        let mut names = BTreeSet::new();
        let (batch, again): (Vec<Planned>, Vec<Planned>) =
            planned.into_iter().partition(|p| names.insert(p.name.clone()));
        let new: Vec<NewMap> = batch.iter().map(Planned::new_map).collect();
        let results = self.dm.create_maps(&new);
        for (p, made) in batch.into_iter().zip(results) {
            let loaded = self.created(&p, made);
            self.finish_setup(p, loaded);
        }
        for p in again {
            self.setup_planned(p);
        }
    }

    /// Puts a planned map in the kernel and takes it in.
    pub(super) fn setup_planned(&mut self, p: Planned) {
        let loaded = self.load_map(&p);
        self.finish_setup(p, loaded);
    }

    /// The table and settings for the map of `wwid` over `devs`, with what the path
    /// attributes need before the load already done; `None` when it waits for its paths'
    /// first check or has no table.
    pub(super) fn plan_setup(
        &mut self,
        wwid: &str,
        mut devs: Vec<String>,
        existing: Option<ExistingMap>,
    ) -> Option<Planned> {
        if self.defer_for_prio(wwid, &devs, &existing) {
            return None;
        }
        // Discovery order decides ties between equal groups.
        devs.sort_by_key(|d| self.paths.get(d).map(Path::scsi_order));
        let name = match &existing {
            Some(m) => m.name.clone(),
            None => self.alias_for(wwid),
        };
        if !devs.is_empty() {
            self.cancel_deferred_remove(&name);
        }
        // A path joining a live map may get the map's max_sectors_kb before the
        // reload; paths already in it are never touched (upstream's adopt_paths).
        if let Some(m) = self.maps.get(&name) {
            let joining: Vec<String> = devs.iter().filter(|d| !m.paths.contains(d)).cloned().collect();
            self.set_max_sectors_on_join(wwid, &joining);
        }
        self.set_path_timeouts(&name, wwid, &devs);
        let pp = self.plan_paths(&devs);
        let plan = plan::plan_map(&self.cfg, wwid, &name, &pp)?;
        if existing.is_none() {
            self.set_max_sectors_on_create(wwid, &devs);
        }
        for l in &plan.log {
            log::debug!("{l}");
        }
        let sectors = devs
            .iter()
            .filter_map(|d| self.paths.get(d))
            .map(|p| p.info.size)
            .max()
            .unwrap_or(0);
        let params = match plan.table.format() {
            Ok(p) => p,
            Err(e) => {
                log::error!("{name}: cannot build the table: {e}");
                return None;
            }
        };
        let mut udev = self.map_udev(&name, wwid, &devs, &pp);
        // At start and on reconfigure, as upstream's select_action: a map that udev never
        // finished with (kpartx and the rules above may not have run) is reloaded with a
        // rescan, rather than adopted or reloaded quietly.
        if self.state == DaemonState::Configure
            && !udev.rescan
            && pp.iter().any(|p| p.usable)
            && let Some(e) = &existing
            && self.udev_incomplete(e.minor)
        {
            log::info!("{name}: udev incomplete, reloading for a rescan");
            udev.rescan = true;
        }
        let how = if self.maps.get(&name).is_some_and(|m| m.resized) {
            Suspend::FLUSH
        } else {
            Suspend::KEEP_IO
        };
        Some(Planned {
            name,
            wwid: wwid.to_string(),
            sectors,
            params,
            devs,
            existing,
            plan,
            udev,
            how,
        })
    }

    /// Takes a map the kernel now has (`loaded`) into the owner's state.
    fn finish_setup(&mut self, p: Planned, loaded: Option<Loaded>) {
        let Some(loaded) = loaded else {
            return;
        };
        let sectors = p.sectors.max(p.existing.map_or(0, |m| m.sectors));
        self.install_map(&p.name, &p.wwid, sectors, p.devs, p.plan, loaded);
    }

    /// What the udev rules are told when the map is created or reloaded (upstream's
    /// `build_udev_flags`): skip_kpartx as selected for the map; no usable path when
    /// none of `pp` is (a path not yet checked counts as usable: the kernel uses it) or
    /// the map's ghost_delay still runs; a rescan when a command or a resize asked for it.
    fn map_udev(&self, name: &str, wwid: &str, devs: &[String], pp: &[PlanPath]) -> MapUdev {
        let map = self.maps.get(name);
        MapUdev {
            skip_kpartx: self.skip_kpartx(wwid, devs),
            no_usable_paths: !pp.iter().any(|p| p.usable) || map.is_some_and(|m| m.rec.ghost_delay_tick > 0),
            rescan: map.is_some_and(|m| m.force_udev_reload),
        }
    }

    /// Whether udev has not finished with the map dm-`minor` (upstream's `is_udev_ready`
    /// false): the device exists, but its udev record lacks `MPATH_DEVICE_READY=1`, as
    /// after udev was killed or its events lost. Never on a host without a udev database.
    fn udev_incomplete(&self, minor: u32) -> bool {
        if !self.env.udev_dir.is_dir() {
            return false;
        }
        let devt = super::read_trimmed(&self.env.sysfs.sys("block").join(format!("dm-{minor}")).join("dev"));
        let Some((major, minor)) = devt
            .as_deref()
            .and_then(|d| d.split_once(':'))
            .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)))
        else {
            return false;
        };
        match discovery::udevdb::read(&self.env.udev_dir, major, minor) {
            Ok(props) => props.as_ref().and_then(|p| p.get("MPATH_DEVICE_READY")) != Some("1"),
            Err(e) => {
                log::warn!("dm-{minor}: {e}");
                false
            }
        }
    }

    /// `skip_kpartx` as selected for the map of `wwid` over `devs` (the first path's
    /// device entry, as for the map's other settings).
    fn skip_kpartx(&self, wwid: &str, devs: &[String]) -> bool {
        let first = devs.first().and_then(|d| self.paths.get(d));
        let (v, p, r) = first.map_or(("", "", ""), |x| {
            (x.info.vendor.as_str(), x.info.product.as_str(), x.info.rev.as_str())
        });
        Selector::new(&self.cfg, v, p, r, wwid).skip_kpartx().value
    }

    /// `skip_kpartx` of a known map (false for one the daemon does not know).
    pub(super) fn map_skip_kpartx(&self, name: &str) -> bool {
        self.maps.get(name).is_some_and(|m| self.skip_kpartx(&m.wwid, &m.paths))
    }

    /// Puts the planned table in the kernel: adopts an existing map whose live table
    /// already matches (switching its group if only that differs), reloads one that does
    /// not (udev told `p.udev`, the map suspended as `p.how`), creates a missing one.
    /// `None` when the map could not be created.
    fn load_map(&mut self, p: &Planned) -> Option<Loaded> {
        let (name, wwid) = (p.name.as_str(), p.wwid.as_str());
        let Some(m) = &p.existing else {
            let made = self.dm.create_map(&p.new_map());
            return self.created(p, made);
        };
        let action = if p.udev.rescan {
            Action::Reload("forced")
        } else {
            match MultipathTable::parse(&m.table) {
                Ok(live) => {
                    let next = MultipathStatus::parse(&m.status).map_or(0, |s| s.next_group);
                    adopt::select_action(&p.plan.table, &live, next, p.plan.retain_hwhandler)
                }
                Err(_) => Action::Reload("not compared"),
            }
        };
        match action {
            Action::Nothing => {
                log::info!("{name}: adopted existing map ({wwid})");
                Some(Loaded::kept(m.minor))
            }
            Action::SwitchGroup(g) => {
                log::info!("{name}: adopted existing map ({wwid}), switching to group {g}");
                self.dm_message(name, &format!("switch_group {g}"));
                Some(Loaded::kept(m.minor))
            }
            Action::Reload(why) => match self.start_reload(name, m.sectors, &p.params, p.udev, p.how) {
                Ok(()) => {
                    log::info!("reload: {name} ({wwid}) {} ({why})", p.params);
                    // Upstream shows only a creation as the map's action (`create:` in topology).
                    Some(Loaded {
                        minor: m.minor,
                        action: None,
                        loads: 1,
                    })
                }
                Err(e) => {
                    log::error!("{name}: reload failed, keeping the current table: {e}");
                    Some(Loaded::kept(m.minor))
                }
            },
        }
    }

    /// What the create of the planned map `p` did (`made`, the port's answer).
    fn created(&mut self, p: &Planned, made: Result<(u32, Load), DmError>) -> Option<Loaded> {
        let (name, wwid) = (p.name.as_str(), p.wwid.as_str());
        match made {
            Ok((minor, load)) => {
                log::info!("create: {name} ({wwid}) dm-{minor} {}", p.params);
                if load == Load::Running {
                    self.note_running(name);
                }
                // find_multipaths strict/smart consult this file later (and multipath -u).
                if let Err(e) = discovery::wwids::WwidsFile::new(self.env.state_dir.join("wwids")).add(wwid) {
                    log::warn!("{wwid}: cannot record the WWID in the wwids file: {e}");
                }
                Some(Loaded {
                    minor,
                    action: Some("create"),
                    loads: 1,
                })
            }
            Err(e) => {
                log::error!("{name}: failed to create the map: {e}");
                None
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn install_map(&mut self, name: &str, wwid: &str, sectors: u64, devs: Vec<String>, plan: MapPlan, loaded: Loaded) {
        let Loaded { minor, action, loads } = loaded;
        let first = devs.first().and_then(|d| self.paths.get(d));
        let (v, p, r) = first.map_or((String::new(), String::new(), String::new()), |x| {
            (x.info.vendor.clone(), x.info.product.clone(), x.info.rev.clone())
        });
        let sel = Selector::new(&self.cfg, &v, &p, &r, wwid);
        let policy = policy::checker_policy(&self.cfg, &sel);
        // A sample time under the minimum is raised here, when selected for a map, as upstream
        // does (the configuration and `show config` keep the value as written).
        let mut marginal = policy::marginal(&sel);
        for (_, line) in marginal.normalize() {
            log::info!("{name}: {line}");
        }
        self.marginal.set_map_config(name, marginal);
        let queueing = plan.table.features.iter().any(|f| f == "queue_if_no_path");
        let ordered: Vec<String> = plan
            .groups
            .iter()
            .flat_map(|g| g.paths.iter().map(|&i| devs[i].clone()))
            .collect();
        let mut rec = chk::MapRecord::new(name, &policy, queueing);
        // The counters outlive a reload, as upstream keeps the map's record across one.
        if let Some(old) = self.maps.get(name).map(|m| &m.rec) {
            rec.stat_path_failures = old.stat_path_failures;
            rec.stat_map_failures = old.stat_map_failures;
            rec.stat_queueing_timeouts = old.stat_queueing_timeouts;
            rec.stat_total_queueing_time = old.stat_total_queueing_time;
            rec.stat_switch_group = old.stat_switch_group;
        }
        let loads = self.maps.get(name).map_or(0, |m| m.loads) + loads;
        let prev = self
            .maps
            .get(name)
            .map(|m| (m.prflag, m.ever_registered_pr, m.prhold, m.paths.clone()));
        self.maps.insert(
            name.to_string(),
            Map {
                name: name.to_string(),
                wwid: wwid.to_string(),
                minor,
                sectors,
                paths: ordered.clone(),
                table: plan.table,
                status: None,
                status_text: String::new(),
                rec,
                policy,
                selector: plan.selector,
                pgpolicy: plan.pgpolicy,
                prio_wait: None,
                action: action.map(str::to_string),
                loads,
                prflag: prev.as_ref().map(|p| p.0).unwrap_or_default(),
                ever_registered_pr: prev.as_ref().is_some_and(|p| p.1),
                // As upstream's selection at every setup: with `reservation_key file`
                // the file is read again (`setprkey` wrote it), and a key configured
                // since replaces one from the file.
                prkey: self.file_key(wwid),
                prhold: prev.as_ref().map(|p| p.2).unwrap_or_default(),
                force_udev_reload: false,
                resized: false,
                suspended: false,
                deferred_remove: false,
            },
        );
        // A map without a key takes no part in registration: its status and hold are
        // unset, not unknown, as upstream's first registration attempt finds them.
        if let Some(m) = self.maps.get(name)
            && m.prflag == PrValue::Unknown
            && self.map_key(m).is_none()
            && let Some(m) = self.maps.get_mut(name)
        {
            m.prflag = PrValue::Unset;
            m.prhold = PrValue::Unset;
        }
        self.touch_map(name);
        for d in &ordered {
            // A path that moved here changes its old map's groups too.
            if let Some(old) = self.paths.get(d).and_then(|p| p.map.clone())
                && old != name
            {
                self.touch_map(&old);
            }
            if let Some(p) = self.paths.get_mut(d) {
                p.map = Some(name.to_string());
            }
        }
        self.refresh_status(name);
        // Upstream registers the key on a path added to a map, and on every path of a
        // map it creates; here at each one's next check, which runs now.
        let before = prev.map(|p| p.3).unwrap_or_default();
        for d in &ordered {
            if !before.contains(d)
                && let Some(p) = self.paths.get_mut(d)
            {
                p.pr_pending = true;
            }
        }
        for d in ordered {
            self.schedule_check(&d, 0);
        }
    }

    /// Drops a map that is gone from the kernel; its paths stay, as orphans, with no
    /// device-mapper state (upstream shows them `undef`).
    pub(super) fn forget_map(&mut self, name: &str) {
        let Some(m) = self.maps.remove(name) else { return };
        self.touch_all();
        for d in m.paths {
            if let Some(p) = self.paths.get_mut(&d) {
                p.map = None;
                p.rec.dm_state = DmState::Undef;
            }
        }
        let acts = self.marginal.handle(
            crate::marginal::state::Event::MapRemoved { map: name.to_string() },
            std::time::Instant::now(),
        );
        self.apply_marginal(acts);
    }

    pub(super) fn refresh_status(&mut self, name: &str) {
        let Ok(text) = self.dm.status(name) else {
            return;
        };
        // The views change only with the kernel's words or a path's DM state.
        let mut changed = false;
        if let Some(m) = self.maps.get_mut(name) {
            if m.status.is_none() || m.status_text != text {
                let Ok(st) = MultipathStatus::parse(&text) else {
                    log::warn!("{name}: cannot parse status '{text}'");
                    return;
                };
                m.status = Some(st);
                m.status_text = text;
                changed = true;
            }
            // Applied also when the words are the same: a path record may be new, or
            // set failed ahead of the kernel.
            if let Some(st) = &m.status {
                for dev in &m.paths {
                    if let Some(p) = self.paths.get_mut(dev)
                        && let Some((_, ps)) = st.path(&p.rec.dev_t)
                    {
                        let dm_state = if ps.active { DmState::Active } else { DmState::Failed };
                        changed |= p.rec.dm_state != dm_state;
                        p.rec.dm_state = dm_state;
                    }
                }
            }
        }
        if changed {
            self.touch_map(name);
        }
    }

    /// The dm event thread saw the event counters of `maps` move: each map of ours has
    /// its status read, and a path the kernel failed while its checker still had it up
    /// is checked at once (the check also looks at the rest of its host or controller),
    /// ahead of the PATH_FAILED uevent that comes after udev's rules.
    pub fn on_dm_events(&mut self, maps: &[String]) {
        for name in maps {
            let Some(m) = self.maps.get(name) else { continue };
            let up_in_dm: Vec<String> = m
                .paths
                .iter()
                .filter(|d| {
                    self.paths.get(*d).is_some_and(|p| {
                        p.rec.dm_state != DmState::Failed && matches!(p.rec.state, PathState::Up | PathState::Ghost)
                    })
                })
                .cloned()
                .collect();
            self.refresh_status(name);
            for dev in up_in_dm {
                if self.paths.get(&dev).is_some_and(|p| p.rec.dm_state == DmState::Failed) {
                    log::info!("{name}: {dev}: failed in the kernel (dm event), checking it now");
                    self.schedule_check(&dev, 0);
                }
            }
        }
    }

    /// Sets up (creates or reloads) the map of each WWID over all its known paths,
    /// creating only where find_multipaths allows.
    pub(super) fn assemble(&mut self, wwids: impl IntoIterator<Item = String>) {
        for wwid in wwids {
            let devs = self.paths_of_wwid(&wwid);
            let existing = self.maps.values().find(|m| m.wwid == wwid).map(Map::as_existing);
            if existing.is_none() && !self.should_multipath(&wwid, devs.len()) {
                continue;
            }
            self.setup_map(&wwid, devs, existing);
        }
    }

    /// Every path of `map` has its size read again from sysfs (and kept): the size they
    /// agree on, `Ok(None)` when none has one, `Err(())` when they differ.
    pub(super) fn read_path_sizes(&mut self, map: &str) -> Result<Option<u64>, ()> {
        let devs = self.maps.get(map).map(|m| m.paths.clone()).unwrap_or_default();
        let mut size = None;
        for d in &devs {
            let read: Option<u64> = super::read_trimmed(&self.env.sysfs.sys("block").join(d).join("size"))
                .and_then(|s| s.parse().ok())
                .filter(|&s| s > 0);
            let Some(s) = read else { continue };
            if let Some(p) = self.paths.get_mut(d) {
                p.info.size = s;
            }
            match size {
                None => size = Some(s),
                Some(prev) if prev != s => return Err(()),
                Some(_) => {}
            }
        }
        Ok(size)
    }

    /// Each map whose paths all have another size than the map takes theirs, as
    /// upstream's reconfigure resizes such a map (ACT_RESIZE: udev rescans it, queued IO
    /// is flushed): after a LUN grew and its paths were rescanned, `multipath -r` /
    /// `reconfigure` alone applies it.
    pub(super) fn take_path_sizes(&mut self) {
        let names: Vec<String> = self.maps.keys().cloned().collect();
        for n in names {
            let Ok(Some(size)) = self.read_path_sizes(&n) else {
                continue;
            };
            if let Some(m) = self.maps.get_mut(&n)
                && m.sectors != size
            {
                log::info!("{n}: size {} -> {size} sectors (size change)", m.sectors);
                m.sectors = size;
                m.force_udev_reload = true;
                m.resized = true;
            }
        }
    }

    /// Sets up `map` again against `live`, the kernel's current state of it: a map
    /// whose table already matches is adopted. A map that is loading, resized or asked
    /// to be rescanned is reloaded regardless (the live table is about to change or
    /// must be loaded again).
    pub(super) fn reconsider(&mut self, map: &str, live: Option<ExistingMap>) {
        let Some(m) = self.maps.get(map) else { return };
        let forced = m.resized || m.force_udev_reload || self.loading(map);
        let existing = match live {
            Some(l) if !forced && l.minor == m.minor => l,
            _ => m.as_existing(),
        };
        let (wwid, devs) = (m.wwid.clone(), m.paths.clone());
        self.setup_map(&wwid, devs, Some(existing));
    }

    /// Every path whose device is not running loses its priority, as upstream's
    /// reconfigure, which discovers its paths anew, asks no prioritizer of such a
    /// path: it gets a group of its own, priority 0, until it comes back.
    pub(super) fn forget_offline_prios(&mut self) {
        let block = self.env.sysfs.sys("block");
        for (dev, p) in self.paths.iter_mut() {
            let state = super::read_trimmed(&block.join(dev).join("device/state"));
            if state.is_some_and(|s| crate::checkers::sysfs::state_from_sysfs(&s).is_some()) {
                p.prio = discovery::pgpolicy::PRIO_UNDEF;
            }
        }
    }

    /// A `change` uevent of path `dev`: with `auto_resize`, its size is read again and,
    /// as upstream, its map takes that size once every path of it has reported it (each
    /// path's own change uevent updates its size); `grow_only` never shrinks a map.
    pub(super) fn auto_resize(&mut self, dev: &str) {
        let how = self.cfg.setting_str(Setting::AutoResize);
        if how.as_deref().is_none_or(|h| h == "never") {
            return;
        }
        let size: Option<u64> = super::read_trimmed(&self.env.sysfs.sys("block").join(dev).join("size"))
            .and_then(|s| s.parse().ok())
            .filter(|&s| s > 0);
        let (Some(size), Some(p)) = (size, self.paths.get_mut(dev)) else {
            return;
        };
        p.info.size = size;
        let Some(map) = p.map.clone() else { return };
        let Some(m) = self.maps.get(&map) else { return };
        if size == m.sectors || (size < m.sectors && how.as_deref() == Some("grow_only")) {
            return;
        }
        let agreed = m
            .paths
            .iter()
            .filter_map(|d| self.paths.get(d))
            .all(|p| p.info.size == 0 || p.info.size == size);
        if !agreed {
            return;
        }
        log::info!("{map}: size {} -> {size} sectors (auto_resize)", m.sectors);
        if let Some(m) = self.maps.get_mut(&map) {
            m.sectors = size;
            m.force_udev_reload = true;
            m.resized = true;
        }
        self.reload(&map);
    }

    pub(super) fn reload(&mut self, map: &str) {
        let Some(m) = self.maps.get(map) else { return };
        let (wwid, devs, existing) = (m.wwid.clone(), m.paths.clone(), m.as_existing());
        self.setup_map(&wwid, devs, Some(existing));
    }

    /// Whether something besides its own partition maps holds the map (upstream's
    /// `mpath_in_use`): a partition map that is open, or more openers than partition
    /// maps with a table. What cannot be read counts as in use; a map that is gone not.
    pub(super) fn map_in_use(&mut self, name: &str) -> bool {
        let open = match self.dm.open_count(name) {
            Ok(0) => return false,
            Ok(n) => n,
            Err(e) if e.errno() == Some(Errno::ENXIO) => return false,
            Err(e) => {
                log::warn!("{name}: cannot read its open count, taking it as in use: {e}");
                return true;
            }
        };
        match self.dm.partition_maps(name) {
            Ok(parts) => {
                let with_table = parts.iter().filter(|p| p.has_table).count();
                parts.iter().any(|p| p.open_count > 0) || open as usize > with_table
            }
            Err(e) => {
                log::warn!("{name}: cannot list its partition maps, taking it as in use: {e}");
                true
            }
        }
    }

    /// Removes the map `name` from the kernel, kpartx's partition maps on it first, as
    /// upstream's `dm_flush_map`: `Busy` while the map or a partition is in use. With
    /// `suspend` (the `del map` commands), queueing is turned off when the table
    /// `queues`, and the map suspended, flushing its IO, before the removal. A removal
    /// that fails leaves the map resumed and queueing as before.
    pub(super) fn flush_map(&mut self, name: &str, suspend: bool, queues: bool) -> Result<(), FlushError> {
        if !self.loading(name) && self.map_in_use(name) {
            log::info!("{name}: map or partition in use");
            return Err(FlushError::Busy);
        }
        let Some(parts) = self.flush_parts(name)? else {
            return Ok(());
        };
        // Queued IO would hold the flushing suspend for ever; a map that keeps queueing
        // is removed without a suspend.
        let unqueued = suspend && queues && self.dm.message(name, "fail_if_no_path").is_ok();
        let suspend = suspend && (!queues || unqueued);
        let give_up = |owner: &mut Owner, why: FlushError| {
            if unqueued && owner.dm.message(name, "queue_if_no_path").is_err() {
                log::error!("{name}: queueing was turned off and cannot be restored");
                if let Some(m) = owner.maps.get_mut(name) {
                    m.rec.queueing = false;
                }
            }
            Err(why)
        };
        for p in &parts {
            if p.open_count > 0 {
                log::info!("{}: map in use", p.name);
                return give_up(self, FlushError::Busy);
            }
            match self.dm.remove_map(&p.name, false) {
                Ok(()) => log::info!("{}: partition map removed", p.name),
                Err(e) => log::warn!("{}: {e}", p.name),
            }
        }
        match self.dm.open_count(name) {
            Ok(0) => {}
            Err(e) if e.errno() == Some(Errno::ENXIO) => return Ok(()),
            _ => {
                log::info!("{name}: map in use");
                return give_up(self, FlushError::Busy);
            }
        }
        if suspend && let Err(e) = self.dm.suspend(name, Suspend::FLUSH) {
            log::warn!("{name}: {e}");
        }
        match self.dm.remove_map(name, false) {
            Ok(()) => Ok(()),
            // removed by someone else meanwhile
            Err(e) if e.errno() == Some(Errno::ENXIO) => Ok(()),
            Err(e) => {
                log::error!("{name}: failed to remove the map: {e}");
                if suspend {
                    let udev = MapUdev {
                        skip_kpartx: parts.is_empty(),
                        ..MapUdev::default()
                    };
                    if let Err(e) = self.dm.resume(name, udev) {
                        log::error!("{name}: {e}");
                    }
                }
                give_up(self, FlushError::Failed)
            }
        }
    }

    /// Removes the map `name` and its partition maps as `deferred_remove` asks (upstream's
    /// flush with DMFL_DEFERRED): at once when nothing holds them, else by the kernel
    /// when the last opener closes them. `Ok(true)`: the removal waits for that close.
    pub(super) fn flush_map_deferred(&mut self, name: &str) -> Result<bool, FlushError> {
        let gone = |e: &crate::dm::DmError| e.errno() == Some(Errno::ENXIO);
        let Some(parts) = self.flush_parts(name)? else {
            return Ok(false);
        };
        for p in &parts {
            if let Err(e) = self.dm.remove_map(&p.name, true) {
                log::warn!("{}: {e}", p.name);
            }
        }
        match self.dm.remove_map(name, true) {
            Ok(()) => {}
            Err(e) if gone(&e) => return Ok(false),
            Err(e) => {
                log::error!("{name}: failed to remove the map: {e}");
                return Err(FlushError::Failed);
            }
        }
        Ok(!matches!(self.dm.open_count(name), Err(e) if gone(&e)))
    }

    /// What both flushes start with: `Busy` while a load of the map is in flight (its
    /// removal would wait in the kernel behind the load's suspend), else the partition
    /// maps on it, `None` when the map is gone already.
    fn flush_parts(&mut self, name: &str) -> Result<Option<Vec<PartitionMap>>, FlushError> {
        if self.loading(name) {
            log::warn!("{name}: busy: its reload (or udev's handling of its creation) is still in flight");
            return Err(FlushError::Busy);
        }
        match self.dm.partition_maps(name) {
            Ok(p) => Ok(Some(p)),
            Err(e) if e.errno() == Some(Errno::ENXIO) => Ok(None),
            Err(e) => {
                log::error!("{name}: cannot list its partition maps: {e}");
                Err(FlushError::Failed)
            }
        }
    }

    /// A map whose removal was deferred gets a path again: the kernel is told to keep
    /// it (upstream's `dm_cancel_deferred_remove`).
    pub(super) fn cancel_deferred_remove(&mut self, name: &str) {
        if let Some(m) = self.maps.get_mut(name)
            && std::mem::take(&mut m.deferred_remove)
        {
            log::info!("{name}: cancelling its deferred remove");
            self.dm_message(name, "@cancel_deferred_remove");
        }
    }

    pub(super) fn dm_message(&mut self, map: &str, msg: &str) {
        if let Err(e) = self.dm.message(map, msg) {
            log::warn!("{map}: message '{msg}' failed: {e}");
        }
    }
}

/// Why a map was not removed.
pub(super) enum FlushError {
    /// The map or one of its partition maps is in use.
    Busy,
    Failed,
}

/// What `load_map` did: the map's minor, the action `show` reports, tables loaded (0 for
/// a map adopted as it is or a failed reload; `map_loads` counts only real loads).
struct Loaded {
    minor: u32,
    action: Option<&'static str>,
    loads: u32,
}

impl Loaded {
    fn kept(minor: u32) -> Loaded {
        Loaded {
            minor,
            action: None,
            loads: 0,
        }
    }
}

/// A map planned by `plan_setup`, not yet put in the kernel: where start-up's creates
/// wait for their batch.
pub(super) struct Planned {
    name: String,
    wwid: String,
    sectors: u64,
    params: String,
    devs: Vec<String>,
    /// The map the kernel has for the WWID, if any.
    existing: Option<ExistingMap>,
    plan: MapPlan,
    udev: MapUdev,
    how: Suspend,
}

impl Planned {
    /// Whether the kernel has no map for it yet.
    pub(super) fn is_new(&self) -> bool {
        self.existing.is_none()
    }

    fn new_map(&self) -> NewMap {
        NewMap {
            name: self.name.clone(),
            uuid: crate::dm::map_uuid(&self.wwid),
            sectors: self.sectors,
            params: self.params.clone(),
            udev: self.udev,
        }
    }
}
