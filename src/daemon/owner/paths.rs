//! Paths: discovery (sysfs, udev, blacklist), adding and removing them, scheduling
//! their checks.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::checkers::state as chk;
use crate::checkers::{self, CheckRequest, Control, Link};
use crate::config::blacklist::Blacklist;
use crate::config::keywords::Setting;
use crate::config::propsel::{PathFacts, Selector};
use crate::discovery::prio::{AnaDetect, OpenAttrs, PrioJob};
use crate::discovery::{self, Bus, PathInfo};
use crate::marginal::state::Event as MgEvent;

use super::{ExistingMap, Map, Owner, Path, SentRequest, read_trimmed};
use crate::daemon::policy;

/// The prioritizer's command timeout when a path is added (upstream's default).
const ADD_PRIO_TIMEOUT: Duration = Duration::from_secs(30);

impl Owner {
    pub(super) fn scan(&self) -> Vec<PathInfo> {
        let cfg = &self.cfg;
        let uid = |p: &PathInfo| {
            Selector::new(cfg, &p.vendor, &p.product, &p.rev, "")
                .uid_attribute(&p.dev)
                .value
        };
        let opts = discovery::ScanOptions {
            udev_data_dir: &self.env.udev_dir,
            uid_attribute: &uid,
        };
        let res = discovery::sysfs::scan_paths(&self.env.sysfs, &opts);
        for s in &res.skipped {
            log::debug!("{}: skipped: {}", s.dev, s.reason);
        }
        let bl = self.blacklist();
        res.paths
            .into_iter()
            .filter(|p| self.blacklist_reason(&bl, p).is_none())
            .collect()
    }

    /// The blacklist in force. NVMe namespaces stay out of the default devnode
    /// exception when the kernel does native NVMe multipathing (read each time: nvme_core
    /// may be loaded after the start). Built again only when that or the configuration
    /// changed.
    pub(super) fn blacklist(&self) -> Arc<Blacklist> {
        let native = read_trimmed(&self.env.sysfs.sys("module/nvme_core/parameters/multipath")).as_deref() == Some("Y");
        let mut cached = self.blacklist.borrow_mut();
        match cached.as_ref() {
            Some((n, bl)) if *n == native => Arc::clone(bl),
            _ => {
                let bl = Arc::new(Blacklist::new(&self.cfg, native));
                *cached = Some((native, Arc::clone(&bl)));
                bl
            }
        }
    }

    /// Why the path is blacklisted (logged), or `None` if it may be used. A USB disk is
    /// skipped first unless `allow_usb_devices` (upstream's pathinfo skips it before the
    /// blacklist, and `add path` answers it as blacklisted).
    fn blacklist_reason(&self, bl: &Blacklist, p: &PathInfo) -> Option<String> {
        if p.protocol == "scsi:usb" && self.cfg.setting_bool(Setting::AllowUsbDevices) != Some(true) {
            log::debug!("{}: skip USB device", p.dev);
            return Some("skip USB device".to_string());
        }
        let sel = Selector::new(&self.cfg, &p.vendor, &p.product, &p.rev, "");
        let uid = sel.uid_attribute(&p.dev).value;
        let props: Vec<&str> = p
            .udev
            .as_ref()
            .map(|u| u.0.iter().map(|(k, _)| k.as_str()).collect())
            .unwrap_or_default();
        let code = bl.filter_path(&crate::config::blacklist::PathInfo {
            devnode: &p.dev,
            vendor: &p.vendor,
            product: &p.product,
            protocol: &p.protocol,
            wwid: p.wwid.as_deref().unwrap_or(""),
            // Without a udev database (no udevd) there is nothing to match properties on.
            properties: &props,
            uid_attribute: if p.udev.is_some() { Some(&uid) } else { None },
        });
        (code > 0).then(|| {
            let reason = crate::config::blacklist::reason(code);
            log::debug!("{}: {reason}", p.dev);
            reason.to_string()
        })
    }

    /// Whether to wait for udev before using the path: udev runs but has not stored the
    /// path's uid_attribute yet. As upstream, the device is retriggered `retrigger_tries`
    /// times, `retrigger_delay` seconds apart, before the sysfs WWID is used.
    pub(super) fn waits_for_udev(&mut self, info: &PathInfo) -> bool {
        let from_udev = matches!(info.wwid_source, Some(discovery::WwidSource::Udev(_)));
        let attr = Selector::new(&self.cfg, &info.vendor, &info.product, &info.rev, "")
            .uid_attribute(&info.dev)
            .value;
        if from_udev || attr.is_empty() || !self.env.udev_dir.is_dir() {
            self.udev_pending.remove(&info.dev);
            return false;
        }
        let tries = self
            .cfg
            .setting_int(Setting::RetriggerTries)
            .unwrap_or(Setting::RetriggerTries.default_int());
        let delay = self
            .cfg
            .setting_int(Setting::RetriggerDelay)
            .unwrap_or(Setting::RetriggerDelay.default_int())
            .max(1) as u64;
        let now = self.now_secs();
        let entry = self.udev_pending.entry(info.dev.clone()).or_insert((0, now + delay));
        if entry.0 >= tries {
            log::warn!(
                "{}: udev has no {attr} after {tries} retriggers, using the WWID from sysfs",
                info.dev
            );
            self.udev_pending.remove(&info.dev);
            return false;
        }
        log::info!(
            "{}: waiting for udev to set {attr} (retrigger {}/{tries})",
            info.dev,
            entry.0
        );
        true
    }

    /// Retriggers paths still waiting for udev; their `change` uevent brings them back.
    pub(super) fn retrigger_udev(&mut self) {
        let now = self.now_secs();
        let delay = self
            .cfg
            .setting_int(Setting::RetriggerDelay)
            .unwrap_or(Setting::RetriggerDelay.default_int())
            .max(1) as u64;
        let tries = self
            .cfg
            .setting_int(Setting::RetriggerTries)
            .unwrap_or(Setting::RetriggerTries.default_int());
        let due: Vec<String> = self
            .udev_pending
            .iter()
            .filter(|(_, (_, at))| *at <= now)
            .map(|(d, _)| d.clone())
            .collect();
        for dev in due {
            let Some(entry) = self.udev_pending.get_mut(&dev) else {
                continue;
            };
            entry.0 += 1;
            entry.1 = now + delay;
            if entry.0 >= tries {
                // Out of retriggers: the next discovery takes the sysfs WWID.
                self.add_paths(&[dev]);
                continue;
            }
            let uevent = self.env.sysfs.sys("block").join(&dev).join("uevent");
            if let Err(e) = std::fs::write(&uevent, "change") {
                log::warn!("{dev}: cannot retrigger udev through {}: {e}", uevent.display());
            }
        }
    }

    pub(super) fn add_path_info(&mut self, info: PathInfo) {
        let sel = Selector::new(
            &self.cfg,
            &info.vendor,
            &info.product,
            &info.rev,
            info.wwid.as_deref().unwrap_or(""),
        );
        // detect_checker: an ALUA path (its access_state in sysfs, as for detect_prio) is
        // checked with tur. Upstream's RDAC detection (VPD page 0xC9, SG_IO) is not done.
        let facts = PathFacts {
            tpgs: info.access_state.is_some(),
            ..PathFacts::default()
        };
        let checker_sel = sel.checker_for_path(&facts);
        let checker_name = checker_sel.value;
        let checker = checkers::checker_by_name(&checker_name).unwrap_or_else(|e| {
            log::warn!("{}: {e}", info.dev);
            checkers::DEFAULT_CHECKER
        });
        let (prio_job, prio) = self.prioritize(&sel, &info);
        // A prioritizer that talks to the device runs with the path's first check, on the
        // checker's workers; until then the path has no priority and its map waits.
        let first_prio = prio.is_none();
        let prio = prio.unwrap_or(discovery::pgpolicy::PRIO_UNDEF);
        let prio_name = prio_job.prio.name().to_string();
        // Refreshed after each usable check, on the checker's workers.
        let prio_job = PrioJob::runs_here(prio_job.prio).then(|| Arc::new(prio_job));
        let dh_state = read_trimmed(&self.env.sysfs.sys("block").join(&info.dev).join("device/dh_state"));
        let devt = format!("{}:{}", info.devt.0, info.devt.1);
        let policy = policy::checker_policy(&self.cfg, &sel);
        let id = self.next_id;
        self.next_id += 1;
        let rec = chk::PathRecord::new(&info.dev, &devt, checker.name(), &policy);
        let offline = checkers::sysfs::state_from_sysfs(&info.state).is_some_and(|v| v.offline);
        let check_timeout = self.check_timeout(&sel, &info.dev);
        log::debug!("{}: path_checker = {} {}", info.dev, checker.name(), checker_sel.origin);
        log::debug!("{}: prio = {prio_name} ({prio})", info.dev);
        if let Some(old) = self.paths.get(&info.dev) {
            self.dev_by_devt.remove(&old.rec.dev_t);
            self.dev_by_path_id.remove(&old.id);
            // (the new record is in no map)
            if let Some(map) = old.map.clone() {
                self.touch_map(&map);
            }
        }
        self.touch_path_alone(&info.dev);
        self.dev_by_devt.insert(devt.clone(), info.dev.clone());
        self.dev_by_path_id.insert(id, info.dev.clone());
        let dev = info.dev.clone();
        self.paths.insert(
            info.dev.clone(),
            Path {
                info,
                id,
                rec,
                prio,
                prio_name,
                prio_job,
                checker,
                map: None,
                dh_state,
                offline,
                check_timeout,
                pr_pending: false,
                fail_uncounted: false,
                sent: None,
            },
        );
        if first_prio {
            self.first_prio.insert(dev.clone());
            self.schedule_check(&dev, 0);
        } else {
            self.first_prio.remove(&dev);
        }
    }

    /// The first check of a path in `first_prio` ended: its priority is what the check's
    /// worker computed (none for a path that is not usable, as upstream leaves a down
    /// path's priority undefined), and the map setup its WWID waited for runs once no
    /// other path of the WWID is waiting. That setup checks every path of the map again.
    pub(super) fn took_first_prio(&mut self, dev: &str, prio: Option<i32>) {
        if !self.first_prio.remove(dev) {
            return;
        }
        // A path outside any map shows its priority too.
        self.touch_path(dev);
        let Some(p) = self.paths.get_mut(dev) else { return };
        p.prio = prio.unwrap_or(discovery::pgpolicy::PRIO_UNDEF);
        // detect_prio on NVMe is answered by that run.
        if let Some(job) = &p.prio_job {
            p.prio_name = job.effective().name().to_string();
        }
        log::debug!("{dev}: prio = {} ({}) after the first check", p.prio_name, p.prio);
        if let Some(wwid) = p.info.wwid.clone() {
            self.resume_deferred(&wwid);
        }
    }

    /// The known paths (device names) of a WWID.
    pub(super) fn paths_of_wwid(&self, wwid: &str) -> Vec<String> {
        self.paths
            .values()
            .filter(|p| p.info.wwid.as_deref() == Some(wwid))
            .map(|p| p.info.dev.clone())
            .collect()
    }

    /// Runs the map setup of `wwid` that waited for first priorities, once none is missing.
    fn resume_deferred(&mut self, wwid: &str) {
        let waiting = self
            .first_prio
            .iter()
            .any(|d| self.paths.get(d).is_some_and(|p| p.info.wwid.as_deref() == Some(wwid)));
        if waiting {
            return;
        }
        let Some(adopt) = self.prio_deferred.remove(wwid) else {
            return;
        };
        let devs = self.paths_of_wwid(wwid);
        if devs.is_empty() {
            return;
        }
        let existing = self
            .maps
            .values()
            .find(|m| m.wwid == wwid)
            .map(Map::as_existing)
            .or(adopt);
        self.setup_map(wwid, devs, existing);
    }

    /// Whether the setup of `wwid`'s map over `devs` must wait for first priorities; if
    /// so, it is remembered (with the kernel map to adopt) and run by `took_first_prio`.
    pub(super) fn defer_for_prio(&mut self, wwid: &str, devs: &[String], existing: &Option<ExistingMap>) -> bool {
        if !devs.iter().any(|d| self.first_prio.contains(d)) {
            return false;
        }
        log::debug!("{wwid}: map setup waits for the first check of its paths");
        let slot = self.prio_deferred.entry(wwid.to_string()).or_insert(None);
        if slot.is_none() {
            *slot = existing.clone();
        }
        true
    }

    /// `detect_prio` first (ALUA-capable SCSI with a readable access_state → sysfs,
    /// an NVMe controller that reports ANA → ana), then the configured prioritizer.
    /// The priority is computed here only when that reads no more than sysfs: `None`
    /// for a prioritizer that sends commands to the device (it may hang with the path).
    fn prioritize(&self, sel: &Selector, info: &PathInfo) -> (PrioJob, Option<i32>) {
        use discovery::prio::Prio;
        let configured = sel.prio().value;
        let (p, refused) = discovery::prio::prio_or_fallback(&configured.0);
        let detect = sel.detect_prio().value;
        // An NVMe controller is asked whether it reports ANA by the first check's run
        // (Identify Controller is a command to the device), which falls back to this.
        let unless_ana = (detect && info.bus == discovery::Bus::Nvme).then(|| AnaDetect::new(p, configured.1.clone()));
        let (p, args) = match info.bus {
            discovery::Bus::Scsi if detect && info.access_state.is_some() => (Prio::Sysfs, String::new()),
            discovery::Bus::Nvme if unless_ana.is_some() => (Prio::Ana, String::new()),
            _ => {
                if let Some(why) = refused {
                    log::warn!("{}: {why}", info.dev);
                }
                (p, configured.1)
            }
        };
        let job = PrioJob {
            prio: p,
            args,
            unless_ana,
            dev: info.dev.clone(),
            hcil: info.hcil,
            serial: info.serial.clone(),
            root: self.env.sysfs.clone(),
            dev_dir: self.env.dev_dir.clone(),
            attrs: OpenAttrs::default(),
        };
        if p.talks_to_device() {
            return (job, None);
        }
        let value = job.run(ADD_PRIO_TIMEOUT).unwrap_or_else(|e| {
            log::warn!("{}: prio {}: {e}", info.dev, p.name());
            discovery::pgpolicy::PRIO_UNDEF
        });
        (job, Some(value))
    }

    /// `checker_timeout` from the configuration, else the SCSI command timeout in sysfs.
    pub(super) fn check_timeout(&self, sel: &Selector, dev: &str) -> std::time::Duration {
        let configured = match sel.get(Setting::CheckerTimeout).map(|s| s.value) {
            Some(crate::config::value::Value::Int(n)) if n > 0 => Some(n as u32),
            _ => None,
        };
        let timeout = configured.unwrap_or_else(|| {
            read_trimmed(&self.env.sysfs.sys("block").join(dev).join("device/timeout"))
                .and_then(|t| t.parse().ok())
                .unwrap_or(30)
        });
        std::time::Duration::from_secs(u64::from(timeout))
    }

    pub(super) fn schedule_check(&mut self, dev: &str, in_secs: u32) {
        let pr = self.pr_job(dev);
        let Some(p) = self.paths.get_mut(dev) else { return };
        let req = CheckRequest {
            path: p.id,
            dev: self.env.dev_dir.join(dev),
            sysfs_state: Some(self.env.sysfs.sys("block").join(dev).join("device/state")),
            link: Some(match p.info.bus {
                Bus::Scsi => Link::ScsiHost(p.info.hcil.host),
                Bus::Nvme => Link::NvmeController(p.info.hcil.host),
            }),
            kind: p.checker,
            timeout: p.check_timeout,
            prio: p.prio_job.clone(),
            pr,
        };
        p.sent = Some(SentRequest::of(p));
        let _ = self.out.checker.send(Control::Schedule { req, in_secs });
    }

    /// After an outcome of `dev`: its next check `in_secs` from now, with the request
    /// the checker loop has when nothing in it changed and no registration is to be made.
    pub(super) fn check_again(&mut self, dev: &str, in_secs: u32) {
        let Some(p) = self.paths.get(dev) else { return };
        if p.sent.as_ref().is_some_and(|s| s.still(p)) && self.pr_job(dev).is_none() {
            let _ = self.out.checker.send(Control::Again { path: p.id, in_secs });
        } else {
            self.schedule_check(dev, in_secs);
        }
    }

    /// Discovers one new path.
    fn discover(&mut self, dev: &str) -> Discovered {
        if self.paths.contains_key(dev) {
            return Discovered::Not;
        }
        let cfg = &self.cfg;
        let uid = |p: &PathInfo| {
            Selector::new(cfg, &p.vendor, &p.product, &p.rev, "")
                .uid_attribute(&p.dev)
                .value
        };
        let opts = discovery::ScanOptions {
            udev_data_dir: &self.env.udev_dir,
            uid_attribute: &uid,
        };
        let info = match discovery::sysfs::path_info(&self.env.sysfs, dev, &opts) {
            Ok(i) => i,
            Err(e) => {
                log::debug!("{dev}: not a path: {e}");
                return Discovered::Not;
            }
        };
        if self.blacklist_reason(&self.blacklist(), &info).is_some() {
            return Discovered::Blacklisted;
        }
        if self.waits_for_udev(&info) {
            return Discovered::Not;
        }
        let wwid = info.wwid.clone();
        self.add_path_info(info);
        wwid.map_or(Discovered::Not, Discovered::Joined)
    }

    /// Adds paths and then sets up each affected map once (a burst of adds for one
    /// LUN is one reload, not one per path).
    pub(super) fn add_paths(&mut self, devs: &[String]) -> Option<String> {
        let mut reply = None;
        let mut wwids = std::collections::BTreeSet::new();
        for dev in devs {
            match self.discover(dev) {
                Discovered::Joined(w) => {
                    wwids.insert(w);
                }
                Discovered::Not => {}
                // The CLI tells the user why `add path` did nothing.
                Discovered::Blacklisted => reply = Some("blacklisted\n".to_string()),
            }
        }
        self.assemble(wwids);
        reply
    }

    /// Removes paths, then reloads each affected map once; a map left without paths is
    /// flushed as `flush_on_last_del` says (see `flush_map_nopaths`).
    pub(super) fn remove_paths(&mut self, devs: &[String]) -> std::collections::BTreeSet<String> {
        let mut touched = std::collections::BTreeSet::new();
        let mut waited = std::collections::BTreeSet::new();
        // Vendor, product and revision of a removed path of each map, for its settings.
        let mut hardware: std::collections::BTreeMap<String, [String; 3]> = std::collections::BTreeMap::new();
        for dev in devs {
            let Some(p) = self.paths.remove(dev) else {
                continue;
            };
            self.touch_path_alone(dev);
            if let Some(map) = &p.map {
                self.touch_map(map);
            }
            if self.first_prio.remove(dev)
                && let Some(w) = &p.info.wwid
            {
                waited.insert(w.clone());
            }
            self.dev_by_devt.remove(&p.rec.dev_t);
            self.dev_by_path_id.remove(&p.id);
            let _ = self.out.checker.send(Control::Remove(p.id));
            let acts = self
                .marginal
                .handle(MgEvent::PathRemoved { path: dev.clone() }, Instant::now());
            self.apply_marginal(acts);
            if let Some(map) = p.map {
                log::info!("{dev}: path removed from map {map}");
                hardware.insert(map.clone(), [p.info.vendor, p.info.product, p.info.rev]);
                touched.insert(map);
            }
        }
        for map in &touched {
            let Some(m) = self.maps.get_mut(map) else {
                continue;
            };
            m.paths.retain(|d| !devs.contains(d));
            if let Some(wait) = m.prio_wait.as_mut() {
                // (a reload below plans with the priorities known; with no paths left, no
                // regroup is waited for)
                wait.retain(|d| !devs.contains(d));
            }
            if m.paths.is_empty() {
                if let Some(hw) = hardware.get(map) {
                    self.flush_map_nopaths(map, hw);
                }
                continue;
            }
            let (wwid, left, existing) = (m.wwid.clone(), m.paths.clone(), m.as_existing());
            self.setup_map(&wwid, left, Some(existing));
        }
        // A setup that waited only for removed paths runs now.
        for wwid in waited {
            self.resume_deferred(&wwid);
        }
        touched
    }

    /// A map whose last path was removed is removed too, as upstream's
    /// `flush_map_nopaths`: unless it queues IO and `flush_on_last_del` is `never`, or it
    /// queues, is in use and the setting is `unused`. Queueing is turned off first (IO
    /// queued on a map without paths would otherwise wait forever), also when the map
    /// then cannot be removed because it is open.
    pub(super) fn flush_map_nopaths(&mut self, map: &str, hw: &[String; 3]) {
        if self.flush_after_load(map, hw.clone()) {
            return;
        }
        let Some(m) = self.maps.get(map) else { return };
        let sel = Selector::new(&self.cfg, &hw[0], &hw[1], &hw[2], &m.wwid);
        let (flush, deferred) = (sel.flush_on_last_del().value, sel.deferred_remove().value);
        let queueing = m.rec.queueing;
        if queueing && flush == "never" {
            log::info!("{map}: map is queueing, can't remove");
            return;
        }
        if queueing && flush == "unused" && self.map_in_use(map) {
            log::info!("{map}: map in use and queueing, can't remove");
            return;
        }
        if queueing {
            log::info!("{map}: last path deleted, disabling queueing");
        }
        let Some(m) = self.maps.get_mut(map) else { return };
        let (rec, acts) = chk::disable_queueing(&m.rec, 0);
        m.rec = rec;
        self.apply_checker_actions(map, acts);
        if !deferred {
            if self.remove_map(map, false).is_ok() {
                log::info!("{map}: map flushed after removing all paths");
            }
            return;
        }
        match self.flush_map_deferred(map) {
            Ok(false) => {
                log::info!("{map}: map flushed after removing all paths");
                self.forget_map(map);
            }
            Ok(true) => {
                log::info!("{map}: devmap deferred remove");
                if let Some(m) = self.maps.get_mut(map) {
                    m.deferred_remove = true;
                }
            }
            Err(_) => log::error!("{map}: can't flush"),
        }
    }
}

/// What discovering one device came to.
enum Discovered {
    /// It joined the path list, for the map of this WWID.
    Joined(String),
    /// Known already, not a path, waiting for udev, or without a WWID.
    Not,
    Blacklisted,
}
