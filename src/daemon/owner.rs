//! The state owner: the one thread that holds paths and maps. Every other thread
//! reaches the state only through the messages handled here.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Instant;

use crossbeam_channel::Sender;

use crate::checkers::state::{self as chk, Action as ChkAction, DmState, PathState};
use crate::checkers::{self, CheckOutcome, CheckRequest, CheckerKind, Control};
use crate::cli::format::{self as fmt, DaemonState};
use crate::cli::parse::{Command, HandlerError};
use crate::config::Config;
use crate::config::blacklist::Blacklist;
use crate::config::propsel::Selector;
use crate::discovery::{self, PathInfo, SysfsRoot};
use crate::dm::status::MultipathStatus;
use crate::dm::table::MultipathTable;
use crate::marginal::state::{Action as MgAction, Event as MgEvent, MarginalState};
use crate::marginal::thread::{IoErrEvent, IoErrStat};

use super::plan::{self, MapPlan, PlanPath};
use super::policy;

/// What the daemon needs from device-mapper. A narrow port, so the owner can be
/// driven by an in-memory fake in unit tests and by the ioctl backend for real.
pub trait MapOps: Send {
    /// Existing `multipath` maps (uuid `mpath-…`).
    fn list_maps(&mut self) -> Result<Vec<ExistingMap>, String>;
    /// Creates and resumes a map; returns its minor number.
    fn create_map(&mut self, name: &str, uuid: &str, sectors: u64, params: &str) -> Result<u32, String>;
    /// Loads a new table into a live map and swaps it in without flushing queued IO.
    fn reload_map(&mut self, name: &str, sectors: u64, params: &str) -> Result<(), String>;
    fn message(&mut self, name: &str, msg: &str) -> Result<(), String>;
    /// The map's status parameters (text after `multipath`).
    fn status(&mut self, name: &str) -> Result<String, String>;
    /// Removes a map; [`RemoveError::Busy`] while it is open (mounted, in use).
    fn remove_map(&mut self, name: &str) -> Result<(), RemoveError>;
    fn suspend(&mut self, name: &str) -> Result<(), String>;
    fn resume(&mut self, name: &str) -> Result<(), String>;
}

/// Why a map could not be removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoveError {
    Busy,
    Failed(String),
}

/// A map found in the kernel at startup or reconfigure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExistingMap {
    pub name: String,
    pub uuid: String,
    pub minor: u32,
    pub sectors: u64,
    pub table: String,
    pub status: String,
}

/// Where the daemon finds the system (changed by tests).
#[derive(Debug, Clone)]
pub struct Env {
    pub sysfs: SysfsRoot,
    pub udev_dir: PathBuf,
    pub dev_dir: PathBuf,
    /// `/etc/multipath`: bindings and wwids files.
    pub state_dir: PathBuf,
    /// `-B`: never write the bindings file.
    pub bindings_read_only: bool,
}

impl Default for Env {
    fn default() -> Self {
        Env {
            sysfs: SysfsRoot::real(),
            udev_dir: PathBuf::from("/run/udev/data"),
            dev_dir: PathBuf::from("/dev"),
            state_dir: PathBuf::from("/etc/multipath"),
            bindings_read_only: false,
        }
    }
}

struct Path {
    info: PathInfo,
    id: checkers::scheduler::PathId,
    rec: chk::PathRecord,
    prio: i32,
    prio_name: String,
    checker: CheckerKind,
    map: Option<String>,
    dh_state: Option<String>,
    /// The sysfs device state was down at the last look (discovery, then every check),
    /// as upstream's `%o` reports it: `show` commands read no sysfs.
    offline: bool,
    /// The checker's timeout, selected when the path is added and on reconfigure (not on
    /// every check: selection matches the hardware table).
    check_timeout: std::time::Duration,
}

struct Map {
    name: String,
    wwid: String,
    minor: u32,
    sectors: u64,
    /// Member paths (device names) in table order.
    paths: Vec<String>,
    table: MultipathTable,
    status: Option<MultipathStatus>,
    rec: chk::MapRecord,
    policy: chk::Policy,
    selector: String,
    action: Option<String>,
    loads: u32,
    /// Persistent-reservation bookkeeping for libmpathpersist (`setprstatus`, `setprkey`,
    /// `setprhold`): the daemon only remembers what the tool tells it.
    prstatus: bool,
    prkey: Option<String>,
    prhold: bool,
}

impl Map {
    /// The map as the owner knows it, for a reload through [`Owner::setup_map`].
    fn as_existing(&self) -> ExistingMap {
        ExistingMap {
            name: self.name.clone(),
            uuid: crate::dm::map_uuid(&self.wwid),
            minor: self.minor,
            sectors: self.sectors,
            table: String::new(),
            status: String::new(),
        }
    }
}

/// Everything the owner sends out besides DM operations.
pub struct Outputs {
    pub checker: Sender<Control>,
    pub ioerr: IoErrStat,
}

pub struct Owner {
    cfg: Config,
    env: Env,
    dm: Box<dyn MapOps>,
    out: Outputs,
    paths: BTreeMap<String, Path>,
    /// Indexes into `paths` (kept with it in `add_path_info` / `remove_paths`): table
    /// entries name paths by dev_t and check outcomes by id, and a scan of every path
    /// for each of them made the 1 s tick quadratic in the number of paths.
    dev_by_devt: HashMap<String, String>,
    dev_by_path_id: HashMap<checkers::scheduler::PathId, String>,
    maps: BTreeMap<String, Map>,
    marginal: MarginalState,
    next_id: checkers::scheduler::PathId,
    /// (name, WWID) of every multipath map found in the kernel at coldplug, ours or not:
    /// their names are never handed out to another WWID.
    kernel_maps: Vec<(String, String)>,
    /// Paths udev has not described yet (no uid_attribute property): retriggers done and
    /// when to try next (daemon seconds). Their sysfs WWID may differ from udev's, and a
    /// wrong WWID would build a second map for the same LUN.
    udev_pending: BTreeMap<String, (i64, u64)>,
    pub state: DaemonState,
    started: Instant,
}

fn log_at(level: u8, text: &str) {
    match level {
        0 => log::error!("{text}"),
        1 => log::warn!("{text}"),
        2 => log::info!("{text}"),
        3 => log::debug!("{text}"),
        _ => log::trace!("{text}"),
    }
}

fn read_trimmed(p: &std::path::Path) -> Option<String> {
    std::fs::read_to_string(p).ok().map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

impl Owner {
    pub fn new(cfg: Config, env: Env, dm: Box<dyn MapOps>, out: Outputs) -> Owner {
        Owner {
            marginal: MarginalState::new(Default::default()),
            cfg,
            env,
            dm,
            out,
            paths: BTreeMap::new(),
            dev_by_devt: HashMap::new(),
            dev_by_path_id: HashMap::new(),
            maps: BTreeMap::new(),
            next_id: 1,
            kernel_maps: Vec::new(),
            udev_pending: BTreeMap::new(),
            state: DaemonState::Startup,
            started: Instant::now(),
        }
    }

    fn now_secs(&self) -> u64 {
        self.started.elapsed().as_secs()
    }

    /// Discovers paths, adopts existing maps, creates missing ones.
    pub fn coldplug(&mut self) {
        self.state = DaemonState::Configure;
        let existing = match self.dm.list_maps() {
            Ok(m) => m,
            Err(e) => {
                log::error!("cannot list device-mapper maps: {e}");
                Vec::new()
            }
        };
        self.kernel_maps = existing
            .iter()
            .filter_map(|m| m.uuid.strip_prefix("mpath-").map(|w| (m.name.clone(), w.to_string())))
            .collect();
        let scanned = self.scan();
        for info in scanned {
            if !self.waits_for_udev(&info) {
                self.add_path_info(info);
            }
        }
        let mut by_wwid: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (dev, p) in &self.paths {
            if let Some(w) = &p.info.wwid {
                by_wwid.entry(w.clone()).or_default().push(dev.clone());
            }
        }
        for (wwid, devs) in by_wwid {
            let adopt = existing.iter().find(|m| m.uuid == format!("mpath-{wwid}"));
            if adopt.is_none() && !self.should_multipath(&wwid, devs.len()) {
                continue;
            }
            self.setup_map(&wwid, devs, adopt.cloned());
        }
        self.state = DaemonState::Idle;
    }

    fn scan(&self) -> Vec<PathInfo> {
        let cfg = &self.cfg;
        let uid = |p: &PathInfo| {
            Selector::new(cfg, &p.vendor, &p.product, &p.rev, "").uid_attribute(&p.dev).value
        };
        let opts = discovery::ScanOptions { udev_data_dir: &self.env.udev_dir, uid_attribute: &uid };
        let res = discovery::sysfs::scan_paths(&self.env.sysfs, &opts);
        for s in &res.skipped {
            log::debug!("{}: skipped: {}", s.dev, s.reason);
        }
        let bl = self.blacklist();
        res.paths.into_iter().filter(|p| self.blacklist_reason(&bl, p).is_none()).collect()
    }

    /// The blacklist in force. NVMe namespaces stay out of the default devnode
    /// exception when the kernel does native NVMe multipathing.
    fn blacklist(&self) -> Blacklist {
        let native = read_trimmed(&self.env.sysfs.sys("module/nvme_core/parameters/multipath")).as_deref() == Some("Y");
        Blacklist::new(&self.cfg, native)
    }

    /// Why the path is blacklisted (logged), or `None` if it may be used.
    fn blacklist_reason(&self, bl: &Blacklist, p: &PathInfo) -> Option<String> {
        let sel = Selector::new(&self.cfg, &p.vendor, &p.product, &p.rev, "");
        let uid = sel.uid_attribute(&p.dev).value;
        let props: Vec<&str> = p.udev.as_ref().map(|u| u.0.iter().map(|(k, _)| k.as_str()).collect()).unwrap_or_default();
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

    fn should_multipath(&self, wwid: &str, npaths: usize) -> bool {
        let mode = self
            .cfg
            .setting_str("find_multipaths")
            .and_then(|v| discovery::valid::FindMultipaths::from_value(&v))
            .unwrap_or(discovery::valid::FindMultipaths::Strict);
        let known = discovery::wwids::WwidsFile::new(self.env.state_dir.join("wwids"))
            .load()
            .map(|w| w.contains(wwid))
            .unwrap_or(false);
        let exists = self.maps.values().any(|m| m.wwid == wwid);
        discovery::valid::should_multipath(mode, known, exists, npaths.saturating_sub(1))
    }

    /// Whether to wait for udev before using the path: udev runs but has not stored the
    /// path's uid_attribute yet. As upstream, the device is retriggered `retrigger_tries`
    /// times, `retrigger_delay` seconds apart, before the sysfs WWID is used.
    fn waits_for_udev(&mut self, info: &PathInfo) -> bool {
        let from_udev = matches!(info.wwid_source, Some(discovery::WwidSource::Udev(_)));
        let attr = Selector::new(&self.cfg, &info.vendor, &info.product, &info.rev, "").uid_attribute(&info.dev).value;
        if from_udev || attr.is_empty() || !self.env.udev_dir.is_dir() {
            self.udev_pending.remove(&info.dev);
            return false;
        }
        let tries = self.cfg.setting_int("retrigger_tries").unwrap_or(3);
        let delay = self.cfg.setting_int("retrigger_delay").unwrap_or(10).max(1) as u64;
        let now = self.now_secs();
        let entry = self.udev_pending.entry(info.dev.clone()).or_insert((0, now + delay));
        if entry.0 >= tries {
            log::warn!("{}: udev has no {attr} after {tries} retriggers, using the WWID from sysfs", info.dev);
            self.udev_pending.remove(&info.dev);
            return false;
        }
        log::info!("{}: waiting for udev to set {attr} (retrigger {}/{tries})", info.dev, entry.0);
        true
    }

    /// Retriggers paths still waiting for udev; their `change` uevent brings them back.
    fn retrigger_udev(&mut self) {
        let now = self.now_secs();
        let delay = self.cfg.setting_int("retrigger_delay").unwrap_or(10).max(1) as u64;
        let tries = self.cfg.setting_int("retrigger_tries").unwrap_or(3);
        let due: Vec<String> = self.udev_pending.iter().filter(|(_, (_, at))| *at <= now).map(|(d, _)| d.clone()).collect();
        for dev in due {
            let Some(entry) = self.udev_pending.get_mut(&dev) else { continue };
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

    fn add_path_info(&mut self, info: PathInfo) {
        let sel = Selector::new(&self.cfg, &info.vendor, &info.product, &info.rev, info.wwid.as_deref().unwrap_or(""));
        let checker_name = sel.checker().value;
        let checker = checkers::checker_by_name(&checker_name).unwrap_or_else(|e| {
            log::warn!("{}: {e}", info.dev);
            CheckerKind::Tur
        });
        let (prio_name, prio) = self.prioritize(&sel, &info);
        let dh_state = read_trimmed(&self.env.sysfs.sys("block").join(&info.dev).join("device/dh_state"));
        let devt = format!("{}:{}", info.devt.0, info.devt.1);
        let policy = policy::checker_policy(&self.cfg, &sel);
        let id = self.next_id;
        self.next_id += 1;
        let rec = chk::PathRecord::new(&info.dev, &devt, checker.name(), &policy);
        let offline = checkers::sysfs::state_from_sysfs(&info.state).is_some_and(|v| v.offline);
        let check_timeout = self.check_timeout(&sel, &info.dev);
        log::debug!("{}: path_checker = {} {}", info.dev, checker.name(), sel.checker().origin);
        log::debug!("{}: prio = {prio_name} ({prio})", info.dev);
        if let Some(old) = self.paths.get(&info.dev) {
            self.dev_by_devt.remove(&old.rec.dev_t);
            self.dev_by_path_id.remove(&old.id);
        }
        self.dev_by_devt.insert(devt.clone(), info.dev.clone());
        self.dev_by_path_id.insert(id, info.dev.clone());
        self.paths.insert(
            info.dev.clone(),
            Path { info, id, rec, prio, prio_name, checker, map: None, dh_state, offline, check_timeout },
        );
    }

    /// `detect_prio` first (ALUA-capable SCSI with a readable access_state → sysfs),
    /// then the configured prioritizer.
    fn prioritize(&self, sel: &Selector, info: &PathInfo) -> (String, i32) {
        use discovery::prio::{self, Prio};
        let configured = sel.prio().value;
        let detected = if sel.detect_prio().value && info.access_state.is_some() {
            Some(Prio::Sysfs)
        } else {
            None
        };
        let (p, args) = match detected {
            Some(p) => (p, String::new()),
            None => (Prio::from_name(&configured.0).unwrap_or(Prio::Const), configured.1),
        };
        let mut rng = || std::process::id().wrapping_mul(2654435761);
        let regex = |re: &str, s: &str| crate::config::regex::ConfigRegex::new(re).ok().map(|r| r.is_match(s));
        let mut env = prio::PrioEnv {
            root: &self.env.sysfs,
            dev_dir: &self.env.dev_dir,
            timeout_ms: 30_000,
            rng: &mut rng,
            regex_search: &regex,
        };
        let value = prio::getprio(p, &args, info, &mut env).unwrap_or_else(|e| {
            log::warn!("{}: prio {}: {e}", info.dev, p.name());
            discovery::pgpolicy::PRIO_UNDEF
        });
        (p.name().to_string(), value)
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
        let taken = |name: &str| {
            self.maps.contains_key(name) || self.kernel_maps.iter().any(|(n, w)| n == name && w != wwid)
        };
        match file.alias_for(wwid, &sel.alias_prefix().value, None, &taken) {
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
    fn setup_map(&mut self, wwid: &str, mut devs: Vec<String>, existing: Option<ExistingMap>) {
        // Discovery order decides ties between equal groups: upstream enumerates devices
        // by sysfs device path, i.e. by SCSI address, not by kernel name (sdc before sdaa).
        devs.sort_by_key(|d| self.paths.get(d).map(|p| (p.info.hcil.host, p.info.hcil.channel, p.info.hcil.target, p.info.hcil.lun)));
        let name = match &existing {
            Some(m) => m.name.clone(),
            None => self.alias_for(wwid),
        };
        let pp = self.plan_paths(&devs);
        let Some(plan) = plan::plan_map(&self.cfg, wwid, &name, &pp) else {
            return;
        };
        for l in &plan.log {
            log::debug!("{l}");
        }
        let sectors = devs.iter().filter_map(|d| self.paths.get(d)).map(|p| p.info.size).max().unwrap_or(0);
        let params = match plan.table.format() {
            Ok(p) => p,
            Err(e) => {
                log::error!("{name}: cannot build the table: {e}");
                return;
            }
        };
        let (minor, action) = match &existing {
            Some(m) if MultipathTable::parse(&m.table).map(|t| same_layout(&t, &plan.table)).unwrap_or(false) => {
                log::info!("{name}: adopted existing map ({wwid})");
                (m.minor, None)
            }
            Some(m) => match self.dm.reload_map(&name, m.sectors, &params) {
                Ok(()) => {
                    log::info!("reload: {name} ({wwid}) {params}");
                    // Upstream shows only a creation as the map's action (`create:` in topology).
                    (m.minor, None)
                }
                Err(e) => {
                    log::error!("{name}: reload failed, keeping the current table: {e}");
                    (m.minor, None)
                }
            },
            None => match self.dm.create_map(&name, &crate::dm::map_uuid(wwid), sectors, &params) {
                Ok(minor) => {
                    log::info!("create: {name} ({wwid}) dm-{minor} {params}");
                    // find_multipaths strict/smart consult this file later (and multipath -u).
                    if let Err(e) = discovery::wwids::WwidsFile::new(self.env.state_dir.join("wwids")).add(wwid) {
                        log::warn!("{wwid}: cannot record the WWID in the wwids file: {e}");
                    }
                    (minor, Some("create"))
                }
                Err(e) => {
                    log::error!("{name}: failed to create the map: {e}");
                    return;
                }
            },
        };
        self.install_map(&name, wwid, minor, sectors.max(existing.map_or(0, |m| m.sectors)), devs, plan, action);
    }

    #[allow(clippy::too_many_arguments)]
    fn install_map(&mut self, name: &str, wwid: &str, minor: u32, sectors: u64, devs: Vec<String>, plan: MapPlan, action: Option<&str>) {
        let first = devs.first().and_then(|d| self.paths.get(d));
        let (v, p, r) = first.map_or((String::new(), String::new(), String::new()), |x| {
            (x.info.vendor.clone(), x.info.product.clone(), x.info.rev.clone())
        });
        let sel = Selector::new(&self.cfg, &v, &p, &r, wwid);
        let policy = policy::checker_policy(&self.cfg, &sel);
        self.marginal.set_map_config(name, policy::marginal(&sel));
        let queueing = plan.table.features.iter().any(|f| f == "queue_if_no_path");
        let ordered: Vec<String> = plan.groups.iter().flat_map(|g| g.paths.iter().map(|&i| devs[i].clone())).collect();
        let rec = chk::MapRecord::new(name, &policy, queueing);
        let loads = self.maps.get(name).map_or(0, |m| m.loads) + 1;
        let prev = self.maps.get(name).map(|m| (m.prstatus, m.prkey.clone(), m.prhold));
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
                rec,
                policy,
                selector: plan.selector,
                action: action.map(str::to_string),
                loads,
                prstatus: prev.as_ref().is_some_and(|p| p.0),
                prkey: prev.as_ref().and_then(|p| p.1.clone()),
                prhold: prev.as_ref().is_some_and(|p| p.2),
            },
        );
        for d in &ordered {
            if let Some(p) = self.paths.get_mut(d) {
                p.map = Some(name.to_string());
            }
        }
        self.refresh_status(name);
        for d in ordered {
            self.schedule_check(&d, 0);
        }
    }

    fn refresh_status(&mut self, name: &str) {
        let Ok(text) = self.dm.status(name) else { return };
        let Ok(st) = MultipathStatus::parse(&text) else {
            log::warn!("{name}: cannot parse status '{text}'");
            return;
        };
        if let Some(m) = self.maps.get_mut(name) {
            for dev in &m.paths {
                if let Some(p) = self.paths.get_mut(dev)
                    && let Some((_, ps)) = st.path(&p.rec.dev_t)
                {
                    p.rec.dm_state = if ps.active { DmState::Active } else { DmState::Failed };
                }
            }
            m.status = Some(st);
        }
    }

    /// `checker_timeout` from the configuration, else the SCSI command timeout in sysfs.
    fn check_timeout(&self, sel: &Selector, dev: &str) -> std::time::Duration {
        let configured = match sel.get("checker_timeout").map(|s| s.value) {
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

    fn schedule_check(&self, dev: &str, in_secs: u32) {
        let Some(p) = self.paths.get(dev) else { return };
        let req = CheckRequest {
            path: p.id,
            dev: self.env.dev_dir.join(dev),
            sysfs_state: Some(self.env.sysfs.sys("block").join(dev).join("device/state")),
            kind: p.checker,
            timeout: p.check_timeout,
        };
        let _ = self.out.checker.send(Control::Schedule { req, in_secs });
    }

    fn path_by_devt(&self, devt: &str) -> Option<&Path> {
        self.dev_by_devt.get(devt).and_then(|d| self.paths.get(d))
    }

    fn dev_by_id(&self, id: checkers::scheduler::PathId) -> Option<String> {
        self.dev_by_path_id.get(&id).cloned()
    }

    fn active_paths(&self, map: &str) -> usize {
        self.active_paths_except(map, None)
    }

    /// Usable paths of `map` (up or ghost, not failed in DM), leaving out `except`.
    fn active_paths_except(&self, map: &str, except: Option<&str>) -> usize {
        self.maps.get(map).map_or(0, |m| {
            m.paths
                .iter()
                .filter(|d| Some(d.as_str()) != except)
                .filter_map(|d| self.paths.get(d))
                .filter(|p| matches!(p.rec.state, PathState::Up | PathState::Ghost) && p.rec.dm_state != DmState::Failed)
                .count()
        })
    }

    /// A finished check: run the path state machine and carry out its actions.
    pub fn on_check(&mut self, out: CheckOutcome) {
        let Some(dev) = self.dev_by_id(out.path_id) else { return };
        let Some(map_name) = self.paths.get(&dev).and_then(|p| p.map.clone()) else {
            return;
        };
        // The kernel changes group and path states on its own (IO errors, group
        // switches): read them before deciding, as upstream does on every check.
        self.refresh_status(&map_name);
        let usable = matches!(out.result.state, PathState::Up | PathState::Ghost);
        if usable {
            let active = self.active_paths(&map_name);
            let acts = self.marginal.handle(MgEvent::CheckerSawUp { path: dev.clone(), map_active_paths: active }, Instant::now());
            self.apply_marginal(acts);
        }
        let others = self.active_paths_except(&map_name, Some(&dev));
        let (Some(p), Some(m)) = (self.paths.get(&dev), self.maps.get(&map_name)) else { return };
        let ctx = chk::MapContext { other_active_paths: others, marginal_hold: self.marginal.is_held(&dev) };
        let upd = chk::update_path_state(&p.rec, &m.rec, &out.result, &ctx, &m.policy, self.now_secs());
        let next = if self.marginal.test_due(&dev, Instant::now()) { upd.path.tick.min(1) } else { upd.path.tick };
        if let Some(p) = self.paths.get_mut(&dev) {
            p.rec = upd.path;
            p.offline = out.result.offline;
        }
        if let Some(m) = self.maps.get_mut(&map_name) {
            m.rec = upd.map;
        }
        self.apply_checker_actions(&map_name, upd.actions);
        if usable {
            // Also when the path merely stayed up: the kernel may have left the best
            // group on its own (IO errors), and failback immediate must bring it back.
            self.failback(&map_name, &dev, upd.new_path_up, upd.chkr_new_path_up);
        }
        let active = self.active_paths(&map_name);
        let acts = self.marginal.handle(MgEvent::MapActivePathsChanged { map: map_name.clone(), active }, Instant::now());
        self.apply_marginal(acts);
        self.schedule_check(&dev, next);
    }

    /// Per-group facts for failback decisions, in table order, and the group the
    /// kernel uses now (1-based; 1 when the status is unknown).
    fn group_info(&self, map: &str) -> (Vec<chk::GroupInfo>, usize) {
        let Some(m) = self.maps.get(map) else { return (Vec::new(), 1) };
        let groups = m
            .table
            .groups
            .iter()
            .map(|g| {
                let members: Vec<&Path> =
                    g.paths.iter().filter_map(|tp| self.path_by_devt(&tp.dev)).collect();
                // A path the kernel has failed carries no IO, whatever its last check said.
                let usable =
                    |p: &&Path| matches!(p.rec.state, PathState::Up | PathState::Ghost) && p.rec.dm_state != DmState::Failed;
                let (prio, enabled_paths) =
                    discovery::pgpolicy::pg_priority(members.iter().map(|p| (p.prio, usable(p))));
                chk::GroupInfo {
                    prio,
                    enabled_paths,
                    marginal: !members.is_empty() && members.iter().all(|p| p.rec.marginal),
                }
            })
            .collect();
        let current = m
            .status
            .as_ref()
            .and_then(|st| st.groups.iter().position(|g| g.state.as_char() == 'A'))
            .map_or(1, |i| i + 1);
        (groups, current)
    }

    /// The failback step after a check of `dev` in `map`.
    fn failback(&mut self, map: &str, dev: &str, new_path_up: bool, chkr_new_path_up: bool) {
        // Until every path has been checked once, "the best group" is a guess: at startup
        // the first path checked would otherwise pull the map into its own group.
        let unknown = self.maps.get(map).is_some_and(|m| {
            m.paths
                .iter()
                .filter_map(|d| self.paths.get(d))
                .any(|p| matches!(p.rec.state, PathState::Unchecked | PathState::Wild))
        });
        if unknown {
            return;
        }
        let (groups, current) = self.group_info(map);
        let Some(m) = self.maps.get(map) else { return };
        let Some(p) = self.paths.get(dev) else { return };
        let path_group = m
            .table
            .groups
            .iter()
            .position(|g| g.paths.iter().any(|tp| tp.dev == p.rec.dev_t))
            .map_or(0, |i| i + 1);
        let others_down = m.table.groups.get(path_group.wrapping_sub(1)).is_some_and(|g| {
            g.paths.iter().filter(|tp| tp.dev != p.rec.dev_t).all(|tp| {
                self.paths
                    .values()
                    .find(|q| q.rec.dev_t == tp.dev)
                    .is_none_or(|q| matches!(q.rec.state, PathState::Down | PathState::Shaky))
            })
        });
        let input = chk::FailbackInput {
            groups: &groups,
            current_group: current,
            path_group,
            others_in_group_down: others_down,
            prio_regroup: false,
        };
        let upd = chk::PathUpdate {
            path: p.rec.clone(),
            map: m.rec.clone(),
            actions: Vec::new(),
            new_path_up,
            chkr_new_path_up,
            marginal_changed: false,
        };
        let (rec, acts) = chk::failback_after_check(&m.rec, &upd, &input, &m.policy);
        if let Some(m) = self.maps.get_mut(map) {
            m.rec = rec;
        }
        self.apply_checker_actions(map, acts);
    }

    /// Once a second: queueing countdowns, deferred failback, ghost delay.
    pub fn tick(&mut self) {
        if !self.udev_pending.is_empty() {
            self.retrigger_udev();
        }
        let names: Vec<String> = self.maps.keys().cloned().collect();
        for name in names {
            let (groups, current) = self.group_info(&name);
            let Some(m) = self.maps.get(&name) else { continue };
            let (rec, acts) = chk::map_tick(&m.rec, 1, &groups, current, &m.policy);
            if let Some(m) = self.maps.get_mut(&name) {
                m.rec = rec;
            }
            if !acts.is_empty() {
                self.apply_checker_actions(&name, acts);
            }
        }
    }

    fn apply_checker_actions(&mut self, map: &str, actions: Vec<ChkAction>) {
        for a in actions {
            match a {
                ChkAction::DmMessage(msg) => self.dm_message(map, &msg),
                ChkAction::SwitchGroup(n) => self.dm_message(map, &format!("switch_group {n}")),
                ChkAction::EnableGroup => {}
                ChkAction::QueueIfNoPath => self.dm_message(map, "queue_if_no_path"),
                ChkAction::FailIfNoPath => self.dm_message(map, "fail_if_no_path"),
                ChkAction::ReloadMap => self.reload(map),
                ChkAction::Log(level, text) => log_at(level, &text),
            }
        }
        self.refresh_status(map);
    }

    fn dm_message(&mut self, map: &str, msg: &str) {
        if let Err(e) = self.dm.message(map, msg) {
            log::warn!("{map}: message '{msg}' failed: {e}");
        }
    }

    fn reload(&mut self, map: &str) {
        let Some(m) = self.maps.get(map) else { return };
        let (wwid, devs, existing) = (m.wwid.clone(), m.paths.clone(), m.as_existing());
        self.setup_map(&wwid, devs, Some(existing));
    }

    fn apply_marginal(&mut self, actions: Vec<MgAction>) {
        for a in actions {
            match a {
                MgAction::FailPath { path } => {
                    let target = self.paths.get_mut(&path).and_then(|p| {
                        p.rec.state = PathState::Down;
                        p.rec.dm_state = DmState::Failed;
                        p.map.clone().map(|m| (m, p.rec.dev_t.clone()))
                    });
                    if let Some((map, devt)) = target {
                        log::info!("{path}: mark as failed");
                        self.dm_message(&map, &format!("fail_path {devt}"));
                        self.refresh_status(&map);
                    }
                }
                MgAction::Delay { path } => {
                    if let Some(p) = self.paths.get_mut(&path) {
                        p.rec.state = PathState::Delayed;
                    }
                }
                MgAction::MarkMarginal { path, marginal } => {
                    let map = self.paths.get_mut(&path).and_then(|p| {
                        p.rec.marginal = marginal;
                        p.map.clone()
                    });
                    if let Some(map) = map {
                        self.reload(&map);
                    }
                }
                MgAction::EnqueueTest { path, sample_time, latency_bound_ms } => {
                    let spec = crate::marginal::sampler::TestSpec::from_enqueue(&path, sample_time, latency_bound_ms);
                    if let Err(e) = self.out.ioerr.start_test(spec) {
                        log::error!("{path}: cannot start the IO error test: {e}");
                        let acts = self.marginal.handle(MgEvent::EnqueueFailed { path }, Instant::now());
                        self.apply_marginal(acts);
                    }
                }
                MgAction::CancelTest { path } => {
                    let _ = self.out.ioerr.cancel_test(&path);
                }
                MgAction::HoldReinstate { .. } => {}
                MgAction::ReleaseReinstate { path } => self.schedule_check(&path, 0),
                MgAction::Log { level, text } => log_at(level, &text),
            }
        }
    }

    /// Reports from the io-err-stat thread.
    pub fn on_ioerr(&mut self, ev: IoErrEvent) {
        let path = match &ev {
            IoErrEvent::Progress { path, .. } | IoErrEvent::Finished { path, .. } | IoErrEvent::EnqueueFailed { path, .. } => {
                path.clone()
            }
        };
        let active = self.paths.get(&path).and_then(|p| p.map.clone()).map_or(0, |m| self.active_paths(&m));
        let acts = self.marginal.handle(ev.into_event(active), Instant::now());
        self.apply_marginal(acts);
    }

    /// A batch of queued uevents: filtered and merged first, so a storm of path adds
    /// for one LUN becomes one map reload.
    pub fn on_uevents(&mut self, batch: Vec<crate::uevent::Uevent>) {
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
            log::debug!("{} merged {} uevents: {}", entry.uevent.action, devs.len(), devs.join(" "));
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
                let active = self.active_paths(&map);
                let acts = self.marginal.handle(
                    MgEvent::PathFailed { path: dev.clone(), map: map.clone(), map_active_paths: active },
                    Instant::now(),
                );
                if let Some(p) = self.paths.get_mut(&dev) {
                    p.rec.dm_state = DmState::Failed;
                }
                self.apply_marginal(acts);
                self.schedule_check(&dev, 0);
            }
            self.refresh_status(&map);
            return;
        }
        if ev.subsystem.as_deref() != Some("block") {
            return;
        }
        let Some(dev) = ev.devname.clone() else { return };
        match ev.action.as_str() {
            // udev's `change` completes a path that waited for its properties
            "add" | "change" if !self.paths.contains_key(&dev) => {
                self.add_paths(&[dev]);
            }
            "remove" => {
                self.remove_paths(&[dev]);
            }
            _ => {}
        }
    }

    /// Discovers one new path. `Ok(Some(wwid))` when it joined the path list,
    /// `Err(reply)` when the CLI should hear why not (blacklisted).
    fn discover(&mut self, dev: &str) -> Result<Option<String>, String> {
        if self.paths.contains_key(dev) {
            return Ok(None);
        }
        let cfg = &self.cfg;
        let uid = |p: &PathInfo| Selector::new(cfg, &p.vendor, &p.product, &p.rev, "").uid_attribute(&p.dev).value;
        let opts = discovery::ScanOptions { udev_data_dir: &self.env.udev_dir, uid_attribute: &uid };
        let info = match discovery::sysfs::path_info(&self.env.sysfs, dev, &opts) {
            Ok(i) => i,
            Err(e) => {
                log::debug!("{dev}: not a path: {e}");
                return Ok(None);
            }
        };
        if self.blacklist_reason(&self.blacklist(), &info).is_some() {
            return Err("blacklisted\n".to_string());
        }
        if self.waits_for_udev(&info) {
            return Ok(None);
        }
        let wwid = info.wwid.clone();
        self.add_path_info(info);
        Ok(wwid)
    }

    /// Adds paths and then sets up each affected map once (a burst of adds for one
    /// LUN is one reload, not one per path).
    fn add_paths(&mut self, devs: &[String]) -> Option<String> {
        let mut reply = None;
        let mut wwids = std::collections::BTreeSet::new();
        for dev in devs {
            match self.discover(dev) {
                Ok(Some(w)) => {
                    wwids.insert(w);
                }
                Ok(None) => {}
                Err(r) => reply = Some(r),
            }
        }
        self.assemble(wwids);
        reply
    }

    /// Sets up (creates or reloads) the map of each WWID over all its known paths,
    /// creating only where find_multipaths allows.
    fn assemble(&mut self, wwids: impl IntoIterator<Item = String>) {
        for wwid in wwids {
            let devs: Vec<String> =
                self.paths.values().filter(|p| p.info.wwid.as_deref() == Some(wwid.as_str())).map(|p| p.info.dev.clone()).collect();
            let existing = self.maps.values().find(|m| m.wwid == wwid).map(Map::as_existing);
            if existing.is_none() && !self.should_multipath(&wwid, devs.len()) {
                continue;
            }
            self.setup_map(&wwid, devs, existing);
        }
    }

    /// Removes paths, then reloads each affected map once. A map is never removed on
    /// our own, even without paths: IO may be queued on it.
    fn remove_paths(&mut self, devs: &[String]) -> std::collections::BTreeSet<String> {
        let mut touched = std::collections::BTreeSet::new();
        for dev in devs {
            let Some(p) = self.paths.remove(dev) else { continue };
            self.dev_by_devt.remove(&p.rec.dev_t);
            self.dev_by_path_id.remove(&p.id);
            let _ = self.out.checker.send(Control::Remove(p.id));
            let acts = self.marginal.handle(MgEvent::PathRemoved { path: dev.clone() }, Instant::now());
            self.apply_marginal(acts);
            if let Some(map) = p.map {
                log::info!("{dev}: path removed from map {map}");
                touched.insert(map);
            }
        }
        for map in &touched {
            let Some(m) = self.maps.get_mut(map) else { continue };
            m.paths.retain(|d| !devs.contains(d));
            if m.paths.is_empty() {
                log::info!("{map}: last path removed, keeping the map");
                continue;
            }
            let (wwid, left, existing) = (m.wwid.clone(), m.paths.clone(), m.as_existing());
            self.setup_map(&wwid, left, Some(existing));
        }
        touched
    }

    /// Reads multipath.conf again and brings the maps in line without dropping any.
    pub fn reconfigure(&mut self, cfg: Config) {
        self.state = DaemonState::Configure;
        self.cfg = cfg;
        let timeouts: Vec<(String, std::time::Duration)> = self
            .paths
            .values()
            .map(|p| {
                let sel = Selector::new(&self.cfg, &p.info.vendor, &p.info.product, &p.info.rev, "");
                (p.info.dev.clone(), self.check_timeout(&sel, &p.info.dev))
            })
            .collect();
        for (dev, t) in timeouts {
            if let Some(p) = self.paths.get_mut(&dev) {
                p.check_timeout = t;
            }
        }
        // Blacklist and find_multipaths may have changed: paths now excluded leave
        // their maps, newly allowed ones join.
        let allowed: Vec<String> = self.scan().into_iter().map(|p| p.dev).collect();
        let gone: Vec<String> = self.paths.keys().filter(|d| !allowed.contains(d)).cloned().collect();
        let reloaded = self.remove_paths(&gone);
        let names: Vec<String> = self.maps.keys().filter(|n| !reloaded.contains(*n)).cloned().collect();
        for n in names {
            self.reload(&n);
        }
        let new: Vec<String> = allowed.into_iter().filter(|d| !self.paths.contains_key(d)).collect();
        self.add_paths(&new);
        // find_multipaths may now allow WWIDs that had paths but no map.
        let unmapped: std::collections::BTreeSet<String> =
            self.paths.values().filter(|p| p.map.is_none()).filter_map(|p| p.info.wwid.clone()).collect();
        self.assemble(unmapped);
        self.state = DaemonState::Idle;
    }

    // ---- CLI --------------------------------------------------------------

    fn path_view(&self, p: &Path) -> fmt::PathView {
        let marginal = self.marginal.status(&p.info.dev, Instant::now()).is_some_and(|s| s.marginal) || p.rec.marginal;
        fmt::PathView {
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

    fn map_view(&self, m: &Map) -> fmt::MapView {
        let groups = m
            .table
            .groups
            .iter()
            .enumerate()
            .map(|(gi, g)| {
                let paths: Vec<fmt::PathView> = g
                    .paths
                    .iter()
                    .filter_map(|tp| self.path_by_devt(&tp.dev))
                    .map(|p| self.path_view(p))
                    .collect();
                let state = match m.status.as_ref().and_then(|s| s.groups.get(gi)).map(|g| g.state.as_char()) {
                    Some('A') => fmt::PgState::Active,
                    Some('E') => fmt::PgState::Enabled,
                    Some('D') => fmt::PgState::Disabled,
                    _ => fmt::PgState::Undef,
                };
                let (priority, _) = discovery::pgpolicy::pg_priority(
                    paths.iter().map(|p| (p.priority, matches!(p.state, fmt::CheckerState::Up | fmt::CheckerState::Ghost))),
                );
                fmt::PathGroupView { priority, state, marginal: paths.iter().all(|p| p.marginal) && !paths.is_empty(), paths }
            })
            .collect();
        fmt::MapView {
            name: m.name.clone(),
            wwid: m.wwid.clone(),
            dm: Some(fmt::DmInfo { minor: m.minor, read_only: false, suspended: false }),
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
        }
    }

    fn find_map(&self, key: &str) -> Option<&Map> {
        let key = key.strip_prefix("/dev/").unwrap_or(key);
        self.maps.values().find(|m| {
            m.name == key || m.wwid == key || key.strip_prefix("dm-").and_then(|n| n.parse().ok()) == Some(m.minor)
        })
    }

    fn find_path(&self, key: &str) -> Option<&Path> {
        let key = key.strip_prefix("/dev/").unwrap_or(key);
        self.paths.get(key).or_else(|| self.path_by_devt(key))
    }

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

    /// Every block device in sysfs and what the daemon makes of it (`show devices`).
    fn devices(&self) -> Vec<(String, fmt::DeviceStatus)> {
        let bl = self.blacklist();
        let mut names: Vec<String> = std::fs::read_dir(self.env.sysfs.sys("block"))
            .map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        names.sort();
        names
            .into_iter()
            .map(|n| {
                let st = if self.paths.contains_key(&n) {
                    fmt::DeviceStatus::Monitored
                } else if bl.filter_devnode(&n) > 0 {
                    fmt::DeviceStatus::Blacklisted
                } else {
                    fmt::DeviceStatus::Unmonitored
                };
                (n, st)
            })
            .collect()
    }

    /// The blacklist in force, each rule marked as from the configuration or built in.
    fn blacklist_view(&self) -> fmt::BlacklistView {
        let (bl, ex) = crate::config::blacklist::effective_lists(&self.cfg, false);
        let user = (&self.cfg.blacklist, &self.cfg.exceptions);
        let pats = |list: &[crate::config::model::Pattern], mine: &[crate::config::model::Pattern]| {
            list.iter()
                .map(|p| fmt::BlacklistRule { text: p.text.clone(), from_config: mine.iter().any(|m| m.text == p.text) })
                .collect::<Vec<_>>()
        };
        let dev_text = |d: &crate::config::model::BlacklistDevice| {
            format!(
                "{}:{}",
                d.vendor.as_ref().map_or("", |p| p.text.as_str()),
                d.product.as_ref().map_or("", |p| p.text.as_str())
            )
        };
        let devs = |list: &[crate::config::model::BlacklistDevice], mine: &[crate::config::model::BlacklistDevice]| {
            list.iter()
                .map(|d| fmt::BlacklistRule {
                    text: dev_text(d),
                    from_config: mine.iter().any(|m| dev_text(m) == dev_text(d)),
                })
                .collect::<Vec<_>>()
        };
        fmt::BlacklistView {
            devnode: (pats(&bl.devnode, &user.0.devnode), pats(&ex.devnode, &user.1.devnode)),
            property: (pats(&bl.property, &user.0.property), pats(&ex.property, &user.1.property)),
            protocol: (pats(&bl.protocol, &user.0.protocol), pats(&ex.protocol, &user.1.protocol)),
            wwid: (pats(&bl.wwid, &user.0.wwid), pats(&ex.wwid, &user.1.wwid)),
            device: (devs(&bl.device, &user.0.device), devs(&ex.device, &user.1.device)),
        }
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

    /// Number of paths and maps, for logs and tests.
    pub fn counts(&self) -> (usize, usize) {
        (self.paths.len(), self.maps.len())
    }

    pub fn shutdown(&mut self) {
        self.state = DaemonState::Shutdown;
        let _ = self.out.checker.send(Control::Shutdown);
        self.out.ioerr.shutdown();
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

fn counted(words: &[String]) -> String {
    if words.is_empty() { "0".to_string() } else { format!("{} {}", words.len(), words.join(" ")) }
}

fn same_layout(a: &MultipathTable, b: &MultipathTable) -> bool {
    let devs = |t: &MultipathTable| t.groups.iter().map(|g| g.paths.iter().map(|p| p.dev.clone()).collect::<Vec<_>>()).collect::<Vec<_>>();
    a.features == b.features && a.hwhandler == b.hwhandler && devs(a) == devs(b)
}

