//! In-memory device-mapper for tests of the daemon: keeps tables and status per
//! map, records target messages in order and applies them to the status the way
//! dm-mpath does.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use nix::errno::Errno;

use super::status::{GroupState, GroupStatus, MultipathStatus, PathStatus};
use super::table::MultipathTable;
use super::udev_cookie::{PendingUdev, UdevFlags};
use super::{DmBackend, DmDevice, DmError, DmInfo, MULTIPATH_TARGET, Suspend, TargetLine};

/// Major number the fake gives its maps (the usual dynamic dm major).
pub const FAKE_DM_MAJOR: u32 = 254;

#[derive(Debug, Clone)]
struct FakeMap {
    uuid: String,
    minor: u32,
    live: Option<Vec<TargetLine>>,
    inactive: Option<Vec<TargetLine>>,
    /// Status of the live multipath target, if it is one.
    status: Option<MultipathStatus>,
    suspended: bool,
    event_nr: u32,
    open_count: i32,
    /// Removed with DM_DEFERRED_REMOVE while open: goes when its open count drops to 0.
    deferred_remove: bool,
}

#[derive(Debug, Default)]
struct State {
    maps: BTreeMap<String, FakeMap>,
    next_minor: u32,
    messages: Vec<(String, String)>,
    /// (operation, map, udev flags) of every create, resume, remove and rename asked for.
    udev: Vec<(&'static str, String, UdevFlags)>,
    /// ("suspend" or "resume", map, how) of every suspend and resume asked for.
    suspends: Vec<(&'static str, String, Suspend)>,
    fail_next: Option<(&'static str, Errno)>,
}

/// The fake backend. Cheap to create; all methods take `&self`.
#[derive(Debug, Default)]
pub struct FakeDm {
    state: Mutex<State>,
}

fn ioctl_err(op: &'static str, name: &str, errno: Errno) -> DmError {
    DmError::Ioctl {
        op,
        name: Some(name.to_owned()),
        errno,
    }
}

/// Per-path selector status the kernel prints for a fresh path of `selector`.
fn fresh_selector_status(selector: &str, table_args: &[String]) -> Vec<String> {
    match selector.split_whitespace().next() {
        // in-flight size, relative throughput (2nd table argument)
        Some("service-time") => {
            vec!["0".into(), table_args.get(1).cloned().unwrap_or_else(|| "1".into())]
        }
        Some("queue-length") => vec!["0".into()],
        _ => Vec::new(),
    }
}

fn fresh_status(t: &MultipathTable) -> MultipathStatus {
    // A fresh map queues IO until its first path group is chosen (measured in the lab).
    MultipathStatus {
        queue_io: 1,
        pg_init_count: 0,
        hwhandler: Vec::new(),
        next_group: if t.groups.is_empty() { 0 } else { t.initial_group.max(1) },
        groups: t
            .groups
            .iter()
            .map(|g| GroupStatus {
                state: GroupState::Enabled,
                selector_status: Vec::new(),
                paths: g
                    .paths
                    .iter()
                    .map(|p| PathStatus {
                        dev: p.dev.clone(),
                        active: true,
                        fail_count: 0,
                        selector_args: fresh_selector_status(&g.selector, &p.args),
                    })
                    .collect(),
            })
            .collect(),
    }
}

impl FakeDm {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic in another test thread must not hide this test's result.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Target messages sent so far, as (map, message), oldest first.
    pub fn messages(&self) -> Vec<(String, String)> {
        self.lock().messages.clone()
    }

    /// Returns and forgets the recorded messages.
    /// (operation, map, udev flags) of each create, resume, remove and rename so far, and
    /// forgets them: `DM_DEV_CREATE`, `resume`, `DM_DEV_REMOVE`, `DM_DEV_RENAME`.
    pub fn take_udev_flags(&self) -> Vec<(&'static str, String, UdevFlags)> {
        std::mem::take(&mut self.lock().udev)
    }

    /// ("suspend" or "resume", map, how) of each suspend and resume so far, and forgets them.
    pub fn take_suspends(&self) -> Vec<(&'static str, String, Suspend)> {
        std::mem::take(&mut self.lock().suspends)
    }

    pub fn take_messages(&self) -> Vec<(String, String)> {
        std::mem::take(&mut self.lock().messages)
    }

    /// Makes the next call of operation `op` (e.g. "DM_TABLE_LOAD") fail with `errno`.
    pub fn fail_next(&self, op: &'static str, errno: Errno) {
        self.lock().fail_next = Some((op, errno));
    }

    /// Sets the open count (a mounted or opened map refuses removal with EBUSY).
    pub fn set_open_count(&self, name: &str, count: i32) -> Result<(), DmError> {
        let mut s = self.lock();
        let m = s
            .maps
            .get_mut(name)
            .ok_or_else(|| ioctl_err("DM_DEV_STATUS", name, Errno::ENXIO))?;
        m.open_count = count;
        if count == 0 && m.deferred_remove {
            s.maps.remove(name);
        }
        Ok(())
    }

    /// Simulates the kernel failing a path on an IO error (no message involved).
    pub fn kernel_fail_path(&self, name: &str, dev: &str) -> Result<(), DmError> {
        let mut s = self.lock();
        let m = s
            .maps
            .get_mut(name)
            .ok_or_else(|| ioctl_err("DM_DEV_STATUS", name, Errno::ENXIO))?;
        set_path(m, dev, false).map_err(|e| ioctl_err("DM_DEV_STATUS", name, e))
    }

    fn check_fail(s: &mut State, op: &'static str, name: &str) -> Result<(), DmError> {
        match s.fail_next {
            Some((o, errno)) if o == op => {
                s.fail_next = None;
                Err(ioctl_err(op, name, errno))
            }
            _ => Ok(()),
        }
    }

    fn info_of(name: &str, m: &FakeMap) -> DmInfo {
        DmInfo {
            name: name.to_owned(),
            uuid: m.uuid.clone(),
            major: FAKE_DM_MAJOR,
            minor: m.minor,
            open_count: m.open_count,
            event_nr: m.event_nr,
            target_count: m.live.as_ref().map_or(0, |l| l.len() as u32),
            suspended: m.suspended,
            read_only: false,
            live_table: m.live.is_some(),
            inactive_table: m.inactive.is_some(),
        }
    }

    /// Runs `f` on an existing map after the injected-failure check.
    fn with_map<T>(
        &self,
        op: &'static str,
        name: &str,
        f: impl FnOnce(&mut FakeMap) -> Result<T, Errno>,
    ) -> Result<T, DmError> {
        let mut s = self.lock();
        Self::check_fail(&mut s, op, name)?;
        let m = s.maps.get_mut(name).ok_or_else(|| ioctl_err(op, name, Errno::ENXIO))?;
        f(m).map_err(|e| ioctl_err(op, name, e))
    }
}

/// Marks a path failed/active; like dm-mpath, failing counts once per transition
/// and each transition is a table event.
fn set_path(m: &mut FakeMap, dev: &str, active: bool) -> Result<(), Errno> {
    let st = m.status.as_mut().ok_or(Errno::EINVAL)?;
    let p = st
        .groups
        .iter_mut()
        .flat_map(|g| g.paths.iter_mut())
        .find(|p| p.dev == dev)
        .ok_or(Errno::EINVAL)?;
    if p.active != active {
        p.active = active;
        if !active {
            p.fail_count += 1;
        }
        m.event_nr += 1;
    }
    Ok(())
}

fn set_queueing(m: &mut FakeMap, queue: bool) -> Result<(), Errno> {
    let live = m.live.as_mut().and_then(|l| l.first_mut()).ok_or(Errno::EINVAL)?;
    let mut t = MultipathTable::parse(&live.params).map_err(|_| Errno::EINVAL)?;
    t.features.retain(|f| f != "queue_if_no_path");
    if queue {
        t.features.insert(0, "queue_if_no_path".into());
    }
    live.params = t.format().map_err(|_| Errno::EINVAL)?;
    Ok(())
}

fn group_number(arg: Option<&str>, m: &FakeMap) -> Result<usize, Errno> {
    let n: usize = arg.and_then(|a| a.parse().ok()).ok_or(Errno::EINVAL)?;
    let groups = m.status.as_ref().map_or(0, |s| s.groups.len());
    if n == 0 || n > groups {
        Err(Errno::EINVAL)
    } else {
        Ok(n)
    }
}

fn apply_message(m: &mut FakeMap, msg: &str) -> Result<(), Errno> {
    let words: Vec<&str> = msg.split_whitespace().collect();
    match words.as_slice() {
        ["fail_path", dev] => set_path(m, dev, false),
        ["reinstate_path", dev] => set_path(m, dev, true),
        ["queue_if_no_path"] => set_queueing(m, true),
        ["fail_if_no_path"] => set_queueing(m, false),
        ["@cancel_deferred_remove"] => {
            m.deferred_remove = false;
            Ok(())
        }
        ["switch_group", n] => {
            let n = group_number(Some(n), m)?;
            if let Some(st) = m.status.as_mut() {
                st.next_group = n as u32;
            }
            Ok(())
        }
        [verb @ ("enable_group" | "disable_group"), n] => {
            let n = group_number(Some(n), m)?;
            if let Some(st) = m.status.as_mut() {
                st.groups[n - 1].state = if *verb == "disable_group" {
                    GroupState::Disabled
                } else {
                    GroupState::Enabled
                };
            }
            Ok(())
        }
        _ => Err(Errno::EINVAL),
    }
}

impl DmBackend for FakeDm {
    fn version(&self) -> Result<[u32; 3], DmError> {
        Ok([4, 47, 0])
    }

    fn list(&self) -> Result<Vec<DmDevice>, DmError> {
        let s = self.lock();
        Ok(s.maps
            .iter()
            .map(|(n, m)| DmDevice {
                name: n.clone(),
                major: FAKE_DM_MAJOR,
                minor: m.minor,
                event_nr: Some(m.event_nr),
            })
            .collect())
    }

    fn create(&self, name: &str, uuid: &str, udev: UdevFlags) -> Result<DmInfo, DmError> {
        let op = "DM_DEV_CREATE";
        let mut s = self.lock();
        s.udev.push((op, name.to_owned(), udev));
        Self::check_fail(&mut s, op, name)?;
        if s.maps.contains_key(name) || (!uuid.is_empty() && s.maps.values().any(|m| m.uuid == uuid)) {
            return Err(ioctl_err(op, name, Errno::EBUSY));
        }
        let minor = s.next_minor;
        s.next_minor += 1;
        let m = FakeMap {
            uuid: uuid.to_owned(),
            minor,
            live: None,
            inactive: None,
            status: None,
            suspended: false,
            event_nr: 0,
            open_count: 0,
            deferred_remove: false,
        };
        let info = Self::info_of(name, &m);
        s.maps.insert(name.to_owned(), m);
        Ok(info)
    }

    fn load(&self, name: &str, targets: &[TargetLine]) -> Result<DmInfo, DmError> {
        // Validate like the kernel constructor would: a bad multipath table is EINVAL.
        for t in targets.iter().filter(|t| t.target == MULTIPATH_TARGET) {
            if let Err(e) = MultipathTable::parse(&t.params) {
                log::debug!("fake DM_TABLE_LOAD {name}: {e}");
                return Err(ioctl_err("DM_TABLE_LOAD", name, Errno::EINVAL));
            }
        }
        self.with_map("DM_TABLE_LOAD", name, |m| {
            m.inactive = Some(targets.to_vec());
            Ok(Self::info_of(name, m))
        })
    }

    fn suspend(&self, name: &str, how: Suspend) -> Result<DmInfo, DmError> {
        self.lock().suspends.push(("suspend", name.to_owned(), how));
        self.with_map("DM_DEV_SUSPEND", name, |m| {
            m.suspended = true;
            Ok(Self::info_of(name, m))
        })
    }

    /// No udev here: nothing is left to wait for.
    fn resume_started(
        &self,
        name: &str,
        how: Suspend,
        udev: UdevFlags,
    ) -> Result<(DmInfo, Option<PendingUdev>), DmError> {
        let op = "DM_DEV_SUSPEND";
        let mut s = self.lock();
        s.udev.push(("resume", name.to_owned(), udev));
        s.suspends.push(("resume", name.to_owned(), how));
        if let Err(e) = Self::check_fail(&mut s, op, name) {
            // As the kernel: a resume that fails after suspending for a loaded table
            // leaves the map suspended and drops that table.
            if let Some(m) = s.maps.get_mut(name)
                && m.inactive.take().is_some()
            {
                m.suspended = true;
            }
            return Err(e);
        }
        drop(s);
        self.with_map(op, name, |m| {
            if let Some(new) = m.inactive.take() {
                m.status = match new.as_slice() {
                    [t] if t.target == MULTIPATH_TARGET => {
                        MultipathTable::parse(&t.params).ok().map(|mt| fresh_status(&mt))
                    }
                    _ => None,
                };
                m.live = Some(new);
                m.event_nr += 1;
            }
            m.suspended = false;
            Ok((Self::info_of(name, m), None))
        })
    }

    fn remove(&self, name: &str, udev: UdevFlags, deferred: bool) -> Result<(), DmError> {
        let op = "DM_DEV_REMOVE";
        let mut s = self.lock();
        s.udev.push((op, name.to_owned(), udev));
        Self::check_fail(&mut s, op, name)?;
        match s.maps.get_mut(name) {
            None => Err(ioctl_err(op, name, Errno::ENXIO)),
            Some(m) if m.open_count > 0 && deferred => {
                m.deferred_remove = true;
                Ok(())
            }
            Some(m) if m.open_count > 0 => Err(ioctl_err(op, name, Errno::EBUSY)),
            Some(_) => {
                s.maps.remove(name);
                Ok(())
            }
        }
    }

    fn rename(&self, name: &str, new_name: &str, udev: UdevFlags) -> Result<(), DmError> {
        let op = "DM_DEV_RENAME";
        let mut s = self.lock();
        s.udev.push((op, name.to_owned(), udev));
        Self::check_fail(&mut s, op, name)?;
        if s.maps.contains_key(new_name) {
            return Err(ioctl_err(op, name, Errno::EBUSY));
        }
        let m = s.maps.remove(name).ok_or_else(|| ioctl_err(op, name, Errno::ENXIO))?;
        s.maps.insert(new_name.to_owned(), m);
        Ok(())
    }

    fn info(&self, name: &str) -> Result<DmInfo, DmError> {
        self.with_map("DM_DEV_STATUS", name, |m| Ok(Self::info_of(name, m)))
    }

    fn table(&self, name: &str) -> Result<Vec<TargetLine>, DmError> {
        self.with_map("DM_TABLE_STATUS", name, |m| Ok(m.live.clone().unwrap_or_default()))
    }

    fn status(&self, name: &str) -> Result<Vec<TargetLine>, DmError> {
        self.with_map("DM_TABLE_STATUS", name, |m| {
            Ok(m.live
                .iter()
                .flatten()
                .map(|t| TargetLine {
                    start: t.start,
                    length: t.length,
                    target: t.target.clone(),
                    params: match (&m.status, t.target == MULTIPATH_TARGET) {
                        (Some(st), true) => st.format(),
                        _ => String::new(),
                    },
                })
                .collect())
        })
    }

    fn message(&self, name: &str, message: &str) -> Result<Option<String>, DmError> {
        let op = "DM_TARGET_MSG";
        let mut s = self.lock();
        Self::check_fail(&mut s, op, name)?;
        s.messages.push((name.to_owned(), message.to_owned()));
        let m = s.maps.get_mut(name).ok_or_else(|| ioctl_err(op, name, Errno::ENXIO))?;
        apply_message(m, message).map_err(|e| ioctl_err(op, name, e))?;
        Ok(None)
    }

    fn arm_poll(&self) -> Result<(), DmError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dm::MapUdev;
    const NO_HINTS: MapUdev = MapUdev {
        skip_kpartx: false,
        no_usable_paths: false,
        rescan: false,
    };

    const TABLE: &str = "0 32768 multipath 0 1 alua 2 1 service-time 0 1 2 8:16 1 1 service-time 0 1 2 8:0 1 1";

    fn fake_with_map() -> FakeDm {
        let dm = FakeDm::new();
        let line = TargetLine::parse(TABLE).unwrap();
        dm.create_map("mpatha", "mpath-333333330000007d0", &[line], NO_HINTS)
            .unwrap();
        dm
    }

    fn status(dm: &FakeDm) -> String {
        let l = dm.status("mpatha").unwrap();
        format!("{} {} {} {}", l[0].start, l[0].length, l[0].target, l[0].params)
    }

    #[test]
    fn create_map_gives_live_table_and_fresh_status() {
        let dm = fake_with_map();
        let t = dm.table("mpatha").unwrap();
        assert_eq!(t, vec![TargetLine::parse(TABLE).unwrap()]);
        assert_eq!(
            status(&dm),
            "0 32768 multipath 2 1 0 0 2 1 E 0 1 2 8:16 A 0 0 1 E 0 1 2 8:0 A 0 0 1"
        );
        let info = dm.info("mpatha").unwrap();
        assert_eq!(
            (info.major, info.minor, info.suspended, info.live_table),
            (254, 0, false, true)
        );
        assert_eq!(info.uuid, "mpath-333333330000007d0");
        assert_eq!(dm.list().unwrap()[0].event_nr, Some(1));
    }

    #[test]
    fn fail_and_reinstate_messages_change_status_and_are_recorded() {
        let dm = fake_with_map();
        dm.message("mpatha", "fail_path 8:16").unwrap();
        assert_eq!(
            status(&dm),
            "0 32768 multipath 2 1 0 0 2 1 E 0 1 2 8:16 F 1 0 1 E 0 1 2 8:0 A 0 0 1"
        );
        dm.message("mpatha", "fail_path 8:16").unwrap(); // already failed: no second count
        dm.message("mpatha", "reinstate_path 8:16").unwrap();
        dm.message("mpatha", "switch_group 2").unwrap();
        let st = dm.multipath_status("mpatha").unwrap();
        assert_eq!(st.path("8:16").map(|(_, p)| (p.active, p.fail_count)), Some((true, 1)));
        assert_eq!(st.next_group, 2);
        assert_eq!(dm.info("mpatha").unwrap().event_nr, 3, "create + fail + reinstate");
        assert_eq!(
            dm.take_messages(),
            [
                ("mpatha", "fail_path 8:16"),
                ("mpatha", "fail_path 8:16"),
                ("mpatha", "reinstate_path 8:16"),
                ("mpatha", "switch_group 2"),
            ]
            .map(|(a, b)| (a.to_owned(), b.to_owned()))
        );
        assert!(dm.messages().is_empty());
    }

    #[test]
    fn bad_messages_are_einval() {
        let dm = fake_with_map();
        for m in ["fail_path 8:99", "switch_group 3", "switch_group 0", "frobnicate"] {
            let e = dm.message("mpatha", m).unwrap_err();
            assert_eq!(e.to_string(), "DM_TARGET_MSG mpatha: Invalid argument", "{m}");
        }
        assert_eq!(
            dm.message("nope", "fail_path 8:0").unwrap_err().errno(),
            Some(Errno::ENXIO)
        );
    }

    #[test]
    fn queueing_messages_rewrite_the_table_features() {
        let dm = fake_with_map();
        dm.message("mpatha", "queue_if_no_path").unwrap();
        assert_eq!(dm.multipath_table("mpatha").unwrap().features, vec!["queue_if_no_path"]);
        dm.message("mpatha", "fail_if_no_path").unwrap();
        assert!(dm.multipath_table("mpatha").unwrap().features.is_empty());
    }

    #[test]
    fn kernel_path_failure_and_reload() {
        let dm = fake_with_map();
        dm.kernel_fail_path("mpatha", "8:0").unwrap();
        assert_eq!(dm.multipath_status("mpatha").unwrap().active_paths(), 1);
        let mut t = dm.multipath_table("mpatha").unwrap();
        t.features.push("queue_if_no_path".into());
        let line = crate::dm::multipath_target(32768, &t).unwrap();
        dm.reload("mpatha", &[line], NO_HINTS, Suspend::KEEP_IO).unwrap();
        assert_eq!(
            dm.multipath_status("mpatha").unwrap().active_paths(),
            2,
            "reload starts fresh"
        );
        assert_eq!(
            dm.table("mpatha").unwrap()[0].params,
            "1 queue_if_no_path 1 alua 2 1 service-time 0 1 2 8:16 1 1 service-time 0 1 2 8:0 1 1"
        );
    }

    #[test]
    fn create_map_cleans_up_when_load_fails() {
        let dm = FakeDm::new();
        let bad = TargetLine {
            start: 0,
            length: 8,
            target: "multipath".into(),
            params: "garbage".into(),
        };
        let e = dm.create_map("m", "mpath-x", &[bad], NO_HINTS).unwrap_err();
        assert_eq!(e.to_string(), "DM_TABLE_LOAD m: Invalid argument");
        assert!(dm.list().unwrap().is_empty());
        dm.fail_next("DM_DEV_SUSPEND", Errno::EIO);
        let line = TargetLine::parse(TABLE).unwrap();
        assert!(
            dm.create_map("m", "mpath-x", std::slice::from_ref(&line), NO_HINTS)
                .is_err()
        );
        assert!(dm.list().unwrap().is_empty());
        dm.create_map("m", "mpath-x", std::slice::from_ref(&line), NO_HINTS)
            .unwrap();
        assert_eq!(
            dm.create("m2", "mpath-x", UdevFlags::NONE).unwrap_err().errno(),
            Some(Errno::EBUSY)
        );
    }

    #[test]
    fn remove_rename_and_busy() {
        let dm = fake_with_map();
        dm.set_open_count("mpatha", 1).unwrap();
        assert_eq!(
            dm.remove("mpatha", UdevFlags::NONE, false).unwrap_err().to_string(),
            "DM_DEV_REMOVE mpatha: Device or resource busy"
        );
        // deferred: kept while open, gone at the last close; a cancel keeps it
        dm.remove("mpatha", UdevFlags::NONE, true).unwrap();
        dm.message("mpatha", "@cancel_deferred_remove").unwrap();
        dm.set_open_count("mpatha", 0).unwrap();
        assert!(dm.info("mpatha").is_ok(), "cancelled");
        dm.set_open_count("mpatha", 1).unwrap();
        dm.remove("mpatha", UdevFlags::NONE, true).unwrap();
        assert!(dm.info("mpatha").is_ok(), "open");
        dm.set_open_count("mpatha", 0).unwrap();
        assert_eq!(dm.info("mpatha").unwrap_err().errno(), Some(Errno::ENXIO));
        let dm = fake_with_map();
        dm.rename("mpatha", "mpathb", UdevFlags::NONE).unwrap();
        assert_eq!(dm.info("mpatha").unwrap_err().errno(), Some(Errno::ENXIO));
        dm.suspend("mpathb", Suspend::KEEP_IO).unwrap();
        assert!(dm.info("mpathb").unwrap().suspended);
        dm.remove("mpathb", UdevFlags::NONE, false).unwrap();
        assert!(dm.list().unwrap().is_empty());
    }

    #[test]
    fn composite_operations_carry_upstreams_udev_flags() {
        let dm = FakeDm::new();
        let line = TargetLine::parse(TABLE).unwrap();
        let nopaths = MapUdev {
            no_usable_paths: true,
            skip_kpartx: true,
            ..NO_HINTS
        };
        dm.create_map("mpatha", "mpath-w", std::slice::from_ref(&line), nopaths)
            .unwrap();
        dm.reload("mpatha", std::slice::from_ref(&line), NO_HINTS, Suspend::KEEP_IO)
            .unwrap();
        dm.reload(
            "mpatha",
            std::slice::from_ref(&line),
            MapUdev {
                rescan: true,
                ..NO_HINTS
            },
            Suspend::KEEP_IO,
        )
        .unwrap();
        let f = UdevFlags::DISABLE_LIBRARY_FALLBACK;
        let create = f | UdevFlags::MPATH_NO_KPARTX | UdevFlags::MPATH_NO_PATHS;
        assert_eq!(
            dm.take_udev_flags(),
            vec![
                ("DM_DEV_CREATE", "mpatha".to_owned(), create),
                ("resume", "mpatha".to_owned(), create),
                ("resume", "mpatha".to_owned(), f | UdevFlags::MPATH_RELOAD),
                ("resume", "mpatha".to_owned(), f),
            ]
        );
        // a create whose resume fails removes the map with the remove flags
        dm.fail_next("DM_DEV_SUSPEND", Errno::EIO);
        assert!(
            dm.create_map("m", "mpath-x", std::slice::from_ref(&line), NO_HINTS)
                .is_err()
        );
        assert_eq!(dm.take_udev_flags().last(), Some(&("DM_DEV_REMOVE", "m".to_owned(), f)));
    }

    #[test]
    fn create_and_reload_resume_without_a_suspend_of_their_own() {
        let dm = fake_with_map();
        let line = TargetLine::parse(TABLE).unwrap();
        dm.reload("mpatha", std::slice::from_ref(&line), NO_HINTS, Suspend::KEEP_IO)
            .unwrap();
        dm.reload("mpatha", std::slice::from_ref(&line), NO_HINTS, Suspend::FLUSH)
            .unwrap();
        let resume = |how| ("resume", "mpatha".to_owned(), how);
        assert_eq!(
            dm.take_suspends(),
            vec![
                resume(Suspend::KEEP_IO),
                resume(Suspend::KEEP_IO),
                resume(Suspend::FLUSH)
            ],
            "create, reload, resize's reload"
        );
    }

    #[test]
    fn a_reload_whose_resume_fails_resumes_the_old_table() {
        let dm = fake_with_map();
        let mut t = dm.multipath_table("mpatha").unwrap();
        t.features.push("queue_if_no_path".into());
        let line = crate::dm::multipath_target(32768, &t).unwrap();
        dm.take_suspends();
        dm.fail_next("DM_DEV_SUSPEND", Errno::EIO);
        let e = dm.reload("mpatha", &[line], NO_HINTS, Suspend::KEEP_IO).unwrap_err();
        assert_eq!(e.errno(), Some(Errno::EIO));
        assert_eq!(dm.take_suspends().len(), 2, "the failed resume and the second one");
        let info = dm.info("mpatha").unwrap();
        assert_eq!((info.suspended, info.inactive_table), (false, false));
        assert!(
            dm.multipath_table("mpatha").unwrap().features.is_empty(),
            "old table live"
        );
    }

    #[test]
    fn backend_is_object_safe() {
        let dm: Box<dyn DmBackend> = Box::new(fake_with_map());
        assert_eq!(dm.version().unwrap(), [4, 47, 0]);
        assert_eq!(dm.multipath_table("mpatha").unwrap().groups.len(), 2);
    }
}
