//! How the show views are built from the owner's records (no sysfs or DM reads), and
//! how they reach the CLI server: after every message that changed its state the owner
//! publishes an immutable [`Snapshot`] that the server answers list/show from.
//!
//! Building is incremental: the path and map views of the last snapshot are kept and
//! reused (shared, `Arc`) when unchanged. The owner's handlers record which maps they
//! touched ([`Touched`]), so a check, a tick or a uevent rebuilds only those maps' views
//! and those of the paths added, removed or in no map (a path added or removed is put
//! into or taken out of the ordered list in place: a uevent storm at thousands of paths
//! does not compare every view per batch), and nothing is published when nothing
//! visible changed.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Instant;

use crate::cli::format::{self as fmt, PathView};
use crate::cli::snapshot::{MapEntry, Publisher, Snapshot};
use crate::config::Config;
use crate::discovery;
use crate::marginal::status::MarginalStatus;

use super::{Map, Owner, Path};

/// What a message may have changed, so that the owner rebuilds only those views.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Anything: every view is compared (commands, signals, reconfigure).
    All,
    /// What the handling touched (check outcomes, uevents, the tick, io-err-stat
    /// reports, status reads): a check that changed nothing shown touches nothing.
    Touched,
}

/// What handling the current message changed in the views, as its handlers record it.
#[derive(Debug, Default)]
pub(super) struct Touched {
    /// Every view is compared (a map forgotten, and its paths left in none).
    all: bool,
    /// Maps whose record, status or table changed, or one of whose paths did.
    maps: BTreeSet<String>,
    /// Paths added or removed, or in no map, whose own views are compared.
    paths: BTreeSet<String>,
}

/// The views of the last snapshot, by device and map name.
#[derive(Debug, Default)]
struct Views {
    paths: HashMap<String, Arc<PathView>>,
    /// Devices in SCSI address order, as upstream's sysfs enumeration lists them.
    order: Vec<String>,
    /// The path views in that order, and each device's place in it: a snapshot takes
    /// this list as it is, and a check that changes one view replaces one entry (no
    /// lookup per path for every publish).
    ordered: Vec<Arc<PathView>>,
    place: HashMap<String, usize>,
    maps: BTreeMap<String, Arc<MapEntry>>,
    /// Counts the changes of the set of paths (`show devices` marks them monitored).
    set_generation: u64,
}

/// Where the owner publishes, and what it published last.
pub(super) struct Published {
    out: Publisher,
    views: Views,
    generation: u64,
    config: Arc<Config>,
    config_generation: u64,
    last: Option<Arc<Snapshot>>,
    /// `show devices`, and the block device, configuration and path set generations
    /// it was made from (the blacklist is compiled again only when one changes).
    devices: Arc<Vec<(Arc<str>, fmt::DeviceStatus)>>,
    devices_of: Option<(u64, u64, u64)>,
}

impl Owner {
    /// From now on, publish a snapshot to `out` after every change (and one now).
    pub fn publish_to(&mut self, out: Publisher) {
        self.views = Some(Published {
            out,
            views: Views::default(),
            generation: 0,
            config: Arc::clone(&self.cfg),
            config_generation: 0,
            last: None,
            devices: Arc::default(),
            devices_of: None,
        });
        self.publish(Change::All);
    }

    /// Publish a new snapshot if `change` altered what the views show.
    pub fn publish(&mut self, change: Change) {
        let mut touched = std::mem::take(&mut self.touched);
        let Some(mut p) = self.views.take() else {
            return;
        };
        // One clock read for every view (a system call under the lab's TCG).
        let now = Instant::now();
        // A path's view shows whether it is marginal: where that changed (an event of
        // the marginal state machine), its map's views are compared.
        let marginal = self.marginal.statuses(now);
        if let Some(l) = p.last.as_ref().filter(|l| l.marginal != marginal) {
            let flag = |list: &[MarginalStatus], path: &str| list.iter().any(|s| s.path == path && s.marginal);
            for s in l.marginal.iter().chain(&marginal) {
                if flag(&l.marginal, &s.path) != flag(&marginal, &s.path) {
                    match self.paths.get(&s.path).and_then(|q| q.map.clone()) {
                        Some(map) => {
                            touched.maps.insert(map);
                        }
                        None => touched.all = true,
                    }
                }
            }
        }
        let mut changed = match change {
            Change::All => self.rebuild_all(&mut p.views, now),
            Change::Touched => self.rebuild_touched(&mut p.views, &touched, now),
        };
        if !Arc::ptr_eq(&p.config, &self.cfg) {
            p.config = Arc::clone(&self.cfg);
            p.config_generation += 1;
            changed = true;
        }
        let devices_of = (
            self.block_devices_generation,
            p.config_generation,
            p.views.set_generation,
        );
        if p.devices_of != Some(devices_of) {
            // (the views' paths are the owner's now, and found by hash: thousands of
            // devices are looked up whenever one comes or goes)
            let devices = self.device_statuses(|d| p.views.place.contains_key(d));
            if *p.devices != devices {
                p.devices = Arc::new(devices);
                changed = true;
            }
            p.devices_of = Some(devices_of);
        }
        changed |= p.last.as_ref().is_none_or(|l| {
            l.state != self.state
                || l.status_read != self.status_read
                || l.reload_pending != self.out.reload.pending()
                || l.marginal != marginal
        });
        if changed {
            p.generation += 1;
            let snap = Arc::new(self.snapshot_of(
                &p.views,
                (p.generation, p.config_generation),
                Arc::clone(&p.devices),
                marginal,
            ));
            p.out.publish(Arc::clone(&snap));
            p.last = Some(snap);
        }
        self.views = Some(p);
    }

    /// A snapshot built afresh, for show commands the owner answers itself.
    pub fn snapshot(&self) -> Snapshot {
        let mut v = Views::default();
        let now = Instant::now();
        self.rebuild_all(&mut v, now);
        let (generation, config_generation) = self
            .views
            .as_ref()
            .map_or((0, 0), |p| (p.generation, p.config_generation));
        self.snapshot_of(
            &v,
            (generation, config_generation),
            Arc::new(self.device_statuses(|d| self.paths.contains_key(d))),
            self.marginal.statuses(now),
        )
    }

    /// Reads every map's DM status (group states change with IO, without any event).
    pub fn refresh_all_status(&mut self) {
        let names: Vec<String> = self.maps.keys().cloned().collect();
        for n in names {
            self.refresh_status(&n);
        }
        self.status_read = Some(Instant::now());
    }

    fn snapshot_of(
        &self,
        v: &Views,
        (generation, config_generation): (u64, u64),
        devices: Arc<Vec<(Arc<str>, fmt::DeviceStatus)>>,
        marginal: Vec<crate::marginal::status::MarginalStatus>,
    ) -> Snapshot {
        Snapshot {
            generation,
            config_generation,
            paths: v.ordered.clone(),
            maps: v.maps.values().cloned().collect(),
            marginal,
            config: Arc::clone(&self.cfg),
            devices,
            state: self.state,
            reload_pending: self.out.reload.pending(),
            pid: std::process::id(),
            status_read: self.status_read,
        }
    }

    /// Records that a map's views may have changed (its record, status, table or paths).
    pub(super) fn touch_map(&mut self, name: &str) {
        if !self.touched.all && !self.touched.maps.contains(name) {
            self.touched.maps.insert(name.to_string());
        }
    }

    /// Records that a path's view may have changed: its map's views, or its own for a
    /// path in no map.
    pub(super) fn touch_path(&mut self, dev: &str) {
        match self.paths.get(dev).and_then(|p| p.map.clone()) {
            Some(map) => self.touch_map(&map),
            None => self.touch_path_alone(dev),
        }
    }

    /// Records that a path was added or removed, or that the view of a path in no map
    /// may have changed: its own view is compared (a removed path's map is touched
    /// by its caller).
    pub(super) fn touch_path_alone(&mut self, dev: &str) {
        if !self.touched.all && !self.touched.paths.contains(dev) {
            self.touched.paths.insert(dev.to_string());
        }
    }

    /// Records that every view may have changed: all are compared.
    pub(super) fn touch_all(&mut self) {
        self.touched.all = true;
        self.touched.maps.clear();
        self.touched.paths.clear();
    }

    /// The views `touched` names; true if any changed.
    fn rebuild_touched(&self, v: &mut Views, touched: &Touched, now: Instant) -> bool {
        if touched.all {
            return self.rebuild_all(v, now);
        }
        let changed = match self.rebuild_paths(v, &touched.paths, now) {
            Some(changed) => changed,
            None => {
                // (a list that is off is not patched further: the views start afresh)
                let set_generation = v.set_generation + 1;
                *v = Views {
                    set_generation,
                    ..Views::default()
                };
                return self.rebuild_all(v, now);
            }
        };
        // (a map that is new or gone has `rebuild_map` compare every view)
        touched
            .maps
            .iter()
            .fold(changed, |changed, m| self.rebuild_map(v, m, now) | changed)
    }

    /// The views of the paths named, each taken out of or put into the ordered list
    /// where a full rebuild would have it; true if any changed, `None` if the views'
    /// set of paths differs from the owner's by more than the named (a change nobody
    /// recorded).
    fn rebuild_paths(&self, v: &mut Views, devs: &BTreeSet<String>, now: Instant) -> Option<bool> {
        let (mut changed, mut set_changed) = (false, false);
        // the removed first: every path left in the list is then one of the owner's
        for dev in devs.iter().filter(|d| !self.paths.contains_key(*d)) {
            if v.paths.remove(dev).is_none() {
                continue;
            }
            let i = v.place.remove(dev)?;
            v.order.remove(i);
            v.ordered.remove(i);
            v.place.values_mut().filter(|j| **j > i).for_each(|j| *j -= 1);
            set_changed = true;
        }
        let added = devs
            .iter()
            .filter(|d| !v.paths.contains_key(*d) && self.paths.contains_key(*d));
        if v.paths.len() + added.count() != self.paths.len() {
            return None;
        }
        for (dev, p) in devs.iter().filter_map(|d| self.paths.get_key_value(d)) {
            let view = Arc::new(self.path_view(p, now));
            if v.paths.contains_key(dev) {
                let i = *v.place.get(dev)?;
                if *v.ordered[i] != *view {
                    v.ordered[i] = Arc::clone(&view);
                    v.paths.insert(dev.clone(), view);
                    changed = true;
                }
                continue;
            }
            // where rebuild_all's sort puts it: by SCSI address, then by name
            let key = Some((p.scsi_order(), dev));
            let i = v
                .order
                .partition_point(|d| self.paths.get_key_value(d).map(|(d, q)| (q.scsi_order(), d)) < key);
            v.place.values_mut().filter(|j| **j >= i).for_each(|j| *j += 1);
            v.place.insert(dev.clone(), i);
            v.order.insert(i, dev.clone());
            v.ordered.insert(i, Arc::clone(&view));
            v.paths.insert(dev.clone(), view);
            set_changed = true;
        }
        if set_changed {
            v.set_generation += 1;
        }
        Some(changed || set_changed)
    }

    /// Every view, reusing the unchanged ones; true if any changed.
    fn rebuild_all(&self, v: &mut Views, now: Instant) -> bool {
        let mut changed = false;
        let mut set_changed = false;
        let mut paths = HashMap::with_capacity(self.paths.len());
        for (dev, p) in &self.paths {
            let view = self.path_view(p, now);
            let kept = match v.paths.remove(dev) {
                Some(old) if *old == view => old,
                old => {
                    set_changed |= old.is_none();
                    changed = true;
                    Arc::new(view)
                }
            };
            paths.insert(dev.clone(), kept);
        }
        set_changed |= !v.paths.is_empty();
        v.paths = paths;
        if set_changed {
            let mut order: Vec<&Path> = self.paths.values().collect();
            order.sort_by_key(|p| p.scsi_order());
            v.order = order.into_iter().map(|p| p.info.dev.clone()).collect();
            v.place = v.order.iter().enumerate().map(|(i, d)| (d.clone(), i)).collect();
            v.set_generation += 1;
            changed = true;
        }
        if changed {
            v.ordered = v.order.iter().filter_map(|d| v.paths.get(d).cloned()).collect();
        }
        let mut maps = BTreeMap::new();
        for (name, m) in &self.maps {
            let entry = self.map_entry(m, &v.paths);
            let kept = match v.maps.remove(name) {
                Some(old) if *old == entry => old,
                _ => {
                    changed = true;
                    Arc::new(entry)
                }
            };
            maps.insert(name.clone(), kept);
        }
        changed |= !v.maps.is_empty();
        v.maps = maps;
        changed
    }

    /// The views of one map and its paths; true if any changed.
    fn rebuild_map(&self, v: &mut Views, name: &str, now: Instant) -> bool {
        let Some(m) = self.maps.get(name) else {
            return self.rebuild_all(v, now);
        };
        if v.paths.len() != self.paths.len() || !v.maps.contains_key(name) {
            return self.rebuild_all(v, now);
        }
        let mut changed = false;
        for dev in &m.paths {
            let Some(p) = self.paths.get(dev) else { continue };
            if !v.paths.contains_key(dev) {
                return self.rebuild_all(v, now);
            }
            let view = self.path_view(p, now);
            if v.paths.get(dev).is_none_or(|old| **old != view) {
                let view = Arc::new(view);
                if let Some(&i) = v.place.get(dev) {
                    v.ordered[i] = Arc::clone(&view);
                }
                v.paths.insert(dev.clone(), view);
                changed = true;
            }
        }
        let entry = self.map_entry(m, &v.paths);
        if v.maps.get(name).is_none_or(|old| **old != entry) {
            v.maps.insert(name.to_string(), Arc::new(entry));
            changed = true;
        }
        changed
    }

    fn path_view(&self, p: &Path, now: Instant) -> PathView {
        let marginal = self.marginal.status(&p.info.dev, now).is_some_and(|s| s.marginal) || p.rec.marginal;
        PathView {
            dev: p.info.dev.clone(),
            dev_t: p.rec.dev_t.clone(),
            wwid: p.info.wwid.clone().unwrap_or_default(),
            hcil: Some(p.info.hcil),
            dm_state: p.rec.dm_state,
            offline: p.offline,
            state: p.rec.state,
            vendor: p.info.vendor.clone(),
            product: p.info.product.clone(),
            rev: p.info.rev.clone(),
            checker: Some(p.checker.name().to_string()),
            tick: i64::from(p.rec.tick),
            checkint: i64::from(p.rec.checkint),
            priority: p.prio,
            size: p.info.size,
            serial: p.info.serial.clone(),
            marginal,
            map: p.map.clone(),
            add_when_online: false,
            host_wwnn: None,
            target_wwnn: None,
            host_wwpn: None,
            target_wwpn: None,
            host_adapter: None,
            vpd_data: None,
            failures: p.rec.path_failures as i32,
            protocol: p.info.protocol.clone(),
            init: fmt::InitState::Ok,
            tpg_id: None,
            max_sectors_kb: None,
        }
    }

    /// The map's view over the path views in `paths` (by device).
    fn map_entry(&self, m: &Map, paths: &HashMap<String, Arc<PathView>>) -> MapEntry {
        let mut group_paths = Vec::with_capacity(m.table.groups.len());
        let groups = m
            .table
            .groups
            .iter()
            .enumerate()
            .map(|(gi, g)| {
                let members: Vec<Arc<PathView>> = g
                    .paths
                    .iter()
                    .filter_map(|tp| self.dev_by_devt.get(&tp.dev))
                    .filter_map(|d| paths.get(d).cloned())
                    .collect();
                let state = match m
                    .status
                    .as_ref()
                    .and_then(|s| s.groups.get(gi))
                    .map(|g| g.state.as_char())
                {
                    Some('A') => fmt::PgState::Active,
                    Some('E') => fmt::PgState::Enabled,
                    Some('D') => fmt::PgState::Disabled,
                    _ => fmt::PgState::Undef,
                };
                let (priority, _) = discovery::pgpolicy::pg_priority(members.iter().map(|p| {
                    (
                        p.priority,
                        matches!(p.state, fmt::CheckerState::Up | fmt::CheckerState::Ghost),
                    )
                }));
                let group = fmt::PathGroupView {
                    priority,
                    state,
                    marginal: members.iter().all(|p| p.marginal) && !members.is_empty(),
                    paths: Vec::new(),
                };
                group_paths.push(members);
                group
            })
            .collect();
        let view = fmt::MapView {
            name: m.name.clone(),
            wwid: m.wwid.clone(),
            dm: Some(fmt::DmInfo {
                minor: m.minor,
                read_only: false,
                suspended: m.suspended,
            }),
            failback: m.policy.failback,
            failback_tick: m.rec.failback_tick,
            no_path_retry: m.rec.no_path_retry,
            retry_tick: m.rec.retry_tick,
            size: m.sectors,
            features: counted(&m.table.features),
            hwhandler: counted(&m.table.hwhandler),
            action: m.action.clone(),
            path_faults: m.rec.stat_path_failures as u32,
            switch_grp: m.rec.stat_switch_group as u32,
            map_loads: m.loads,
            total_q_time: m.rec.stat_total_queueing_time as u32,
            q_timeouts: m.rec.stat_queueing_timeouts as u32,
            map_failures: m.rec.stat_map_failures as u32,
            selector: m.selector.clone(),
            vpd_data: None,
            max_sectors_kb: None,
            groups,
        };
        MapEntry { view, group_paths }
    }
}

fn counted(words: &[String]) -> String {
    if words.is_empty() {
        "0".to_string()
    } else {
        format!("{} {}", words.len(), words.join(" "))
    }
}
