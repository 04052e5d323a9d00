//! The state owner: the one thread that holds paths and maps. Every other thread
//! reaches the state only through the messages handled here.
//!
//! One file per concern, each an `impl Owner` block:
//! - `lifecycle.rs`: start-up (coldplug), reconfigure, shutdown: the one place for
//!   both, whether a signal or a CLI command asks
//! - `paths.rs`: discovering, adding and removing paths
//! - `maps.rs`: building, loading and removing maps
//! - `loads.rs`: reloads that run off this thread (a suspend waits for IO in flight)
//! - `path_attrs.rs`: the sysfs attributes set on a map's paths at map setup
//! - `checks.rs`: a check result, the 1 s tick, marginal-path (io-err-stat) events
//! - `uevents.rs`: a kernel or udev uevent
//! - `devices.rs`: the block devices `show devices` lists, read on coldplug,
//!   reconfigure and block uevents
//! - `reservations.rs`: persistent reservations: which paths register the map's key
//!   (on a checker worker) and what the result says about the map
//! - `commands.rs`: a CLI command, one handler per command
//! - `views.rs`: how the `show` views are built from the owner's records and
//!   published to the CLI server after every change

mod checks;
mod commands;
mod devices;
mod lifecycle;
mod loads;
mod maps;
mod path_attrs;
mod paths;
mod reservations;
mod uevents;
mod views;

pub use views::Change;

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::Sender;

use crate::checkers::state::{self as chk, DmState, PathState};
use crate::checkers::{self, CheckerKind, Control};
use crate::cli::format::DaemonState;
use crate::config::blacklist::Blacklist;
use crate::config::{Config, LoadOptions};
use crate::discovery::{PathInfo, SysfsRoot};
use crate::dm::status::MultipathStatus;
use crate::dm::table::MultipathTable;
use crate::dm::{DmError, MapUdev, Suspend};
use crate::marginal::state::MarginalState;
use crate::marginal::thread::IoErrStat;

/// What the daemon needs from device-mapper. A narrow port, so the owner can be
/// driven by an in-memory fake in unit tests and by the ioctl backend for real.
pub trait MapOps: Send {
    /// Existing `multipath` maps (uuid `mpath-…`).
    fn list_maps(&mut self) -> Result<Vec<ExistingMap>, DmError>;
    /// Creates and resumes a map; returns its minor number. The map is live on return; a
    /// port may leave udev's handling of its first uevent to another thread: then it
    /// answers [`Load::Running`] and a [`LoadDone`] of [`LoadKind::CreateUdev`] follows.
    fn create_map(&mut self, map: &NewMap) -> Result<(u32, Load), DmError>;
    /// Creates every map of `batch`, each as [`MapOps::create_map`]; the results in the
    /// batch's order. A port may create them side by side (the maps are independent: the
    /// start-up's creates), this one does them in turn.
    fn create_maps(&mut self, batch: &[NewMap]) -> Vec<Result<(u32, Load), DmError>> {
        batch.iter().map(|m| self.create_map(m)).collect()
    }
    /// Loads a new table into a live map and swaps it in, the map suspended as `how`
    /// says; the resume carries upstream's reload flags. The swap's suspend waits for the
    /// IO in flight on the map, so a port may run it on another thread: then it answers
    /// [`Load::Running`] and the end comes back to the owner as a [`LoadDone`].
    fn reload_map(
        &mut self,
        name: &str,
        sectors: u64,
        params: &str,
        udev: MapUdev,
        how: Suspend,
    ) -> Result<Load, DmError>;
    fn message(&mut self, name: &str, msg: &str) -> Result<(), DmError>;
    /// The map's status parameters (text after `multipath`).
    fn status(&mut self, name: &str) -> Result<String, DmError>;
    /// Removes a map or a partition map; the error's errno is EBUSY while it is open.
    /// `deferred` (`deferred_remove`): an open one is removed by the kernel when its
    /// last opener closes it, and the call succeeds.
    fn remove_map(&mut self, name: &str, deferred: bool) -> Result<(), DmError>;
    /// How many openers the map has: mounts, LVM, processes, its partition maps.
    fn open_count(&mut self, name: &str) -> Result<i32, DmError>;
    /// kpartx's partition maps on the map (uuid `part<N>-mpath-…`, a table over it).
    fn partition_maps(&mut self, name: &str) -> Result<Vec<PartitionMap>, DmError>;
    /// Suspends the map as `how` says (the `suspend map` command keeps queued IO, the
    /// suspend before a removal flushes it).
    fn suspend(&mut self, name: &str, how: Suspend) -> Result<(), DmError>;
    /// A plain resume (the `resume map` command): the udev rules hear of skip_kpartx only.
    fn resume(&mut self, name: &str, udev: MapUdev) -> Result<(), DmError>;
}

/// A map to create: its name, `mpath-` uuid, size and `multipath` table, and what the
/// udev rules are told about it (upstream's create flags).
#[derive(Debug, Clone)]
pub struct NewMap {
    pub name: String,
    pub uuid: String,
    pub sectors: u64,
    pub params: String,
    pub udev: MapUdev,
}

/// How [`MapOps::reload_map`] went from the owner's side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Load {
    /// The new table is live.
    Done,
    /// Still running on its own thread; a [`LoadDone`] follows.
    Running,
}

/// A reload that ran off the owner's thread has ended.
#[derive(Debug)]
pub struct LoadDone {
    pub map: String,
    pub kind: LoadKind,
    pub result: Result<(), DmError>,
    /// A reload's from the load to the end of the resume, long when the suspend waited
    /// for IO (udev's handling after it is not counted: its wait logs itself); a new
    /// map's wait for udev.
    pub took: std::time::Duration,
}

/// What ran off the owner's thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadKind {
    /// A reload: a new table swapped in.
    Reload,
    /// A new map's wait for udev (its table was live before): nothing changed in the kernel.
    CreateUdev,
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

/// A partition map (kpartx's `<map>-part1`, …) stacked on a multipath map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionMap {
    pub name: String,
    pub open_count: i32,
    /// It has a table (live or inactive), so it holds the map open.
    pub has_table: bool,
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
    /// Where `reconfigure` (command or SIGHUP) reads multipath.conf from.
    pub config: LoadOptions,
    /// `-v`: the verbosity of every configuration loaded whose files set none.
    pub verbosity: Option<u8>,
}

impl Default for Env {
    fn default() -> Self {
        Env {
            sysfs: SysfsRoot::real(),
            udev_dir: PathBuf::from("/run/udev/data"),
            dev_dir: PathBuf::from("/dev"),
            state_dir: PathBuf::from("/etc/multipath"),
            bindings_read_only: false,
            config: LoadOptions::default(),
            verbosity: None,
        }
    }
}

struct Path {
    info: PathInfo,
    id: checkers::scheduler::PathId,
    rec: chk::PathRecord,
    prio: i32,
    prio_name: String,
    /// How the priority is refreshed after each usable check (`None` for
    /// prioritizers the daemon does not run).
    prio_job: Option<std::sync::Arc<crate::discovery::prio::PrioJob>>,
    checker: CheckerKind,
    map: Option<String>,
    dh_state: Option<String>,
    /// The sysfs device state was down at the last look (discovery, then every check),
    /// as upstream's `%o` reports it: `show` commands read no sysfs.
    offline: bool,
    /// Failed by the `fail path` command and not yet counted: upstream counts the fault
    /// when it handles DM's PATH_FAILED event and the kernel still has the path failed
    /// then (a reinstate that came first leaves it uncounted).
    fail_uncounted: bool,
    /// The checker's timeout, selected when the path is added and on reconfigure (not on
    /// every check: selection matches the hardware table).
    check_timeout: std::time::Duration,
    /// Its next usable check registers the map's reservation key (it joined the map,
    /// came back, or the map was found registered).
    pr_pending: bool,
    /// What the checker loop's request for the path was made of when last sent.
    sent: Option<SentRequest>,
}

/// The parts of a path's check request that can change (its device node and sysfs state
/// file follow from its name): while they stay, a check is followed by a
/// [`Control::Again`](checkers::Control::Again), not by a whole request.
#[derive(Debug, Clone)]
struct SentRequest {
    kind: CheckerKind,
    timeout: std::time::Duration,
    prio: Option<std::sync::Arc<crate::discovery::prio::PrioJob>>,
}

impl SentRequest {
    fn of(p: &Path) -> SentRequest {
        SentRequest {
            kind: p.checker,
            timeout: p.check_timeout,
            prio: p.prio_job.clone(),
        }
    }

    fn still(&self, p: &Path) -> bool {
        let same_prio = match (&self.prio, &p.prio_job) {
            (Some(a), Some(b)) => std::sync::Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        };
        same_prio && self.kind == p.checker && self.timeout == p.check_timeout
    }
}

impl Path {
    /// Upstream's discovery order: it enumerates devices by sysfs device path, i.e. by
    /// SCSI address, not by kernel name (sdc before sdaa).
    fn scsi_order(&self) -> (u32, u32, u32, u64) {
        let h = self.info.hcil;
        (h.host, h.channel, h.target, h.lun)
    }
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
    /// The kernel's words `status` was parsed from: between changes it prints the
    /// same, and a check then reads them without parsing them again.
    status_text: String,
    rec: chk::MapRecord,
    policy: chk::Policy,
    selector: String,
    /// The grouping the table was planned with: group_by_prio regroups when a
    /// priority changes.
    pgpolicy: crate::discovery::pgpolicy::Pgpolicy,
    /// After a priority changed: the other paths whose refreshed priorities the
    /// regroup waits for (their checks run at once).
    prio_wait: Option<std::collections::BTreeSet<String>>,
    action: Option<String>,
    loads: u32,
    /// Persistent reservations: whether the key is registered (`setprstatus`, or what
    /// a path's registration found), whether it ever was in this daemon's life, the
    /// key `setprkey` gave, and whether the key holds the reservation (what a path's
    /// registration read, or what mpathpersist reports with `setprhold`).
    prflag: reservations::PrValue,
    ever_registered_pr: bool,
    prkey: Option<String>,
    prhold: reservations::PrValue,
    /// The next reload must have udev rescan the map (upstream's `force_udev_reload`:
    /// the `reload map` and `resize map` commands): no reload flag on its resume.
    force_udev_reload: bool,
    /// The next reload is a resize (the `resize map` command, a size change found on
    /// reconfigure): its suspend flushes queued IO, as upstream's ACT_RESIZE.
    resized: bool,
    /// Suspended by the `suspend map` command (`%t` shows `suspend` until it is resumed,
    /// by `resume map` or by a reload, whose resume ends every suspension).
    suspended: bool,
    /// Removed with `deferred_remove` while open: the kernel removes it at the last
    /// close, unless a path joins it first (the removal is then cancelled).
    deferred_remove: bool,
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
    /// Configuration loads for reconfigure, run off the owner's thread.
    pub reload: crate::daemon::reload::Reloader,
}

pub struct Owner {
    /// Shared with the published snapshots (`show config`).
    cfg: Arc<Config>,
    /// The blacklist of `cfg` (regexes compiled once, not for each uevent batch), and
    /// whether the kernel multipathed NVMe natively when it was built; see `blacklist`.
    blacklist: RefCell<Option<(bool, Arc<Blacklist>)>>,
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
    /// Paths whose prioritizer talks to the device (alua, ana), waiting for their first
    /// check: the check's worker computes the priority, never this thread.
    first_prio: BTreeSet<String>,
    /// Map setups (by WWID) put off until the paths above have their priorities, with the
    /// kernel map to adopt, if any: a table grouped by priority is loaded once, right.
    prio_deferred: BTreeMap<String, Option<ExistingMap>>,
    /// Maps with a reload running off this thread, and what waits for its end.
    loads: BTreeMap<String, loads::Next>,
    /// While a CLI command is handled: the maps whose reload it sent off this thread
    /// (its reply waits for them). `None` otherwise, so nothing piles up.
    command_loads: Option<Vec<String>>,
    /// Protocols already reported as not taking SCSI timeouts (once per daemon life).
    tmo_unsupported: BTreeSet<String>,
    /// `forcequeueing daemon`: maps keep queueing after shutdown although
    /// `queue_without_daemon` is `no` (until `restorequeueing daemon` or a reconfigure).
    queue_without_daemon_forced: bool,
    /// `reconfigure all` was asked for since the last configuration was applied: every
    /// map is reloaded with a udev rescan (upstream's FORCE_RELOAD_YES).
    reconfigure_all: bool,
    pub state: DaemonState,
    started: Instant,
    /// When every map's DM status was last read (group states in the views).
    status_read: Option<Instant>,
    /// Where the views are published, once the CLI server listens.
    views: Option<views::Published>,
    /// What handling the current message changed in the views (published after it).
    touched: views::Touched,
    /// The block devices `show devices` lists, and a count of their changes.
    block_devices: devices::BlockDevices,
    block_devices_generation: u64,
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
    std::fs::read_to_string(p)
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

impl Owner {
    pub fn new(cfg: Config, env: Env, dm: Box<dyn MapOps>, out: Outputs) -> Owner {
        Owner {
            marginal: MarginalState::new(Default::default()),
            cfg: Arc::new(cfg),
            blacklist: RefCell::new(None),
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
            first_prio: BTreeSet::new(),
            prio_deferred: BTreeMap::new(),
            loads: BTreeMap::new(),
            command_loads: None,
            tmo_unsupported: BTreeSet::new(),
            queue_without_daemon_forced: false,
            reconfigure_all: false,
            state: DaemonState::Startup,
            started: Instant::now(),
            status_read: None,
            views: None,
            touched: Default::default(),
            block_devices: Default::default(),
            block_devices_generation: 0,
        }
    }

    fn now_secs(&self) -> u64 {
        self.secs_at(Instant::now())
    }

    /// Whole seconds from the owner's start to `now`: the state machines' clock.
    fn secs_at(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.started).as_secs()
    }

    /// Number of paths and maps, for logs and tests.
    pub fn counts(&self) -> (usize, usize) {
        (self.paths.len(), self.maps.len())
    }

    fn path_by_devt(&self, devt: &str) -> Option<&Path> {
        self.dev_by_devt.get(devt).and_then(|d| self.paths.get(d))
    }

    fn dev_by_id(&self, id: checkers::scheduler::PathId) -> Option<String> {
        self.dev_by_path_id.get(&id).cloned()
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
                .filter(|p| {
                    matches!(p.rec.state, PathState::Up | PathState::Ghost) && p.rec.dm_state != DmState::Failed
                })
                .count()
        })
    }
}
