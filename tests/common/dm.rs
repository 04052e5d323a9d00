//! An in-memory device-mapper that records every call and answers status as the
//! kernel does, and the state owner built over it and a [`FakeSys`] (shared by
//! `tests/daemon_owner.rs` and the benches).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crossbeam_channel::{Receiver, unbounded};
use multipathd::checkers::state::{PathState, Verdict};
use multipathd::checkers::{CheckOutcome, Control};
use multipathd::cli::format::CheckerState;
use multipathd::config::{Config, parse_str};
use multipathd::daemon::owner::{Env, ExistingMap, Load, MapOps, NewMap, Outputs, Owner, PartitionMap};
use multipathd::daemon::reload::{Reloaded, Reloader};
use multipathd::dm::table::MultipathTable;
use multipathd::dm::{DmError, MapUdev, Suspend};
use multipathd::marginal::thread::{IoErrEvent, IoErrStat, Spawner};

use super::{FakeSys, SECTORS};

/// One call the owner made that changes (or lists) kernel state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    List,
    Create {
        name: String,
        uuid: String,
        sectors: u64,
        params: String,
    },
    Reload {
        name: String,
        sectors: u64,
        params: String,
    },
    /// A reload whose suspend is not `Suspend::KEEP_IO` (a resize's).
    ReloadFlushing {
        name: String,
    },
    Message {
        name: String,
        msg: String,
    },
    Remove {
        name: String,
    },
    /// With DM_DEFERRED_REMOVE (`deferred_remove`).
    RemoveDeferred {
        name: String,
    },
    Suspend {
        name: String,
        how: Suspend,
    },
    Resume {
        name: String,
    },
}

#[derive(Debug, Clone)]
pub struct FakeMap {
    pub uuid: String,
    pub minor: u32,
    pub sectors: u64,
    pub params: String,
    /// Paths (`major:minor`) the kernel has failed.
    pub failed: BTreeSet<String>,
    /// The group a `switch_group` message named: the kernel's next group until a reload.
    pub switched: Option<u32>,
}

#[derive(Debug, Default)]
pub struct DmState {
    pub calls: Vec<Call>,
    pub maps: BTreeMap<String, FakeMap>,
    pub next_minor: u32,
    /// Maps and partition maps held open (mounted, in use): removing them fails with EBUSY.
    pub open: BTreeSet<String>,
    /// kpartx's partition maps: name → (the map they are on, whether they have a table).
    pub parts: BTreeMap<String, (String, bool)>,
    /// What each create, reload and resume told the udev rules: (operation, map, hints).
    pub udev: Vec<(&'static str, String, MapUdev)>,
    /// Reloads run off the owner's thread, as the daemon's port runs them: each waits
    /// in `held` (map, sectors, table) until the test ends it ([`Harness::end_load`]).
    pub hold_loads: bool,
    pub held: Vec<(String, u64, String)>,
    /// A new map's wait for udev runs off the owner's thread, as the daemon's port runs
    /// it when udev runs: creates answer `Load::Running` (the test ends the wait with a
    /// `LoadDone` of `LoadKind::CreateUdev`).
    pub udev_waits: bool,
    /// Status reads, each an ioctl on the real kernel (the owner reads one per check).
    pub status_reads: usize,
    /// The names of each batch of creates (`create_maps`), created in turn here.
    pub batches: Vec<Vec<String>>,
}

impl DmState {
    /// Openers of a map or partition map: a holder (`open`), and a map's partition
    /// maps with a table, as the kernel counts them.
    pub fn open_count(&self, name: &str) -> i32 {
        let parts = self.parts.values().filter(|(of, table)| of == name && *table).count();
        i32::from(self.open.contains(name)) + parts as i32
    }

    /// Calls recorded since the last `take_calls`.
    pub fn take_calls(&mut self) -> Vec<Call> {
        std::mem::take(&mut self.calls)
    }

    /// A map that exists before the daemon starts.
    pub fn preload(&mut self, name: &str, uuid: &str, params: &str) -> u32 {
        let minor = self.next_minor;
        self.next_minor += 1;
        self.maps.insert(
            name.to_string(),
            FakeMap {
                uuid: uuid.into(),
                minor,
                sectors: SECTORS,
                params: params.into(),
                failed: BTreeSet::new(),
                switched: None,
            },
        );
        minor
    }

    /// The kernel's status text for a map: groups and paths from its table, the
    /// table's initial group active, the next group the one `switch_group` named (no IO
    /// has moved yet), paths failed by `fail_path` shown `F`.
    pub fn status_of(&self, m: &FakeMap) -> Result<String, DmError> {
        let t = MultipathTable::parse(&m.params).map_err(|e| DmError::BadReply {
            op: "status",
            name: None,
            why: e.to_string(),
        })?;
        let active = if t.groups.is_empty() { 0 } else { t.initial_group.max(1) };
        let next = m.switched.unwrap_or(active);
        let mut s = format!("2 0 0 0 {} {next}", t.groups.len());
        for (i, g) in t.groups.iter().enumerate() {
            let st = if i as u32 + 1 == active { "A" } else { "E" };
            s.push_str(&format!(" {st} 0 {} 2", g.paths.len()));
            for p in &g.paths {
                let af = if m.failed.contains(&p.dev) { "F" } else { "A" };
                s.push_str(&format!(" {} {af} 0 0 1", p.dev));
            }
        }
        Ok(s)
    }
}

/// The error the kernel gives for a map that does not exist.
pub fn gone(op: &'static str, name: &str) -> DmError {
    DmError::Ioctl {
        op,
        name: Some(name.to_string()),
        errno: nix::errno::Errno::ENXIO,
    }
}

pub struct FakeDm(pub Arc<Mutex<DmState>>);

impl MapOps for FakeDm {
    fn list_maps(&mut self) -> Result<Vec<ExistingMap>, DmError> {
        let mut st = self.0.lock().unwrap();
        st.calls.push(Call::List);
        let st = &*st;
        st.maps
            .iter()
            .map(|(name, m)| {
                Ok(ExistingMap {
                    name: name.clone(),
                    uuid: m.uuid.clone(),
                    minor: m.minor,
                    sectors: m.sectors,
                    table: m.params.clone(),
                    status: st.status_of(m)?,
                })
            })
            .collect()
    }

    fn create_map(&mut self, m: &NewMap) -> Result<(u32, Load), DmError> {
        let (name, uuid, sectors, params, udev) =
            (m.name.as_str(), m.uuid.as_str(), m.sectors, m.params.as_str(), m.udev);
        let mut st = self.0.lock().unwrap();
        st.udev.push(("create", name.into(), udev));
        st.calls.push(Call::Create {
            name: name.into(),
            uuid: uuid.into(),
            sectors,
            params: params.into(),
        });
        if st.maps.contains_key(name) {
            return Err(DmError::Ioctl {
                op: "create",
                name: Some(name.to_string()),
                errno: nix::errno::Errno::EBUSY,
            });
        }
        let minor = st.next_minor;
        st.next_minor += 1;
        st.maps.insert(
            name.into(),
            FakeMap {
                uuid: uuid.into(),
                minor,
                sectors,
                params: params.into(),
                failed: BTreeSet::new(),
                switched: None,
            },
        );
        Ok((minor, if st.udev_waits { Load::Running } else { Load::Done }))
    }

    fn create_maps(&mut self, batch: &[NewMap]) -> Vec<Result<(u32, Load), DmError>> {
        let names = batch.iter().map(|m| m.name.clone()).collect();
        self.0.lock().unwrap().batches.push(names);
        batch.iter().map(|m| self.create_map(m)).collect()
    }

    fn reload_map(
        &mut self,
        name: &str,
        sectors: u64,
        params: &str,
        udev: MapUdev,
        how: Suspend,
    ) -> Result<Load, DmError> {
        let mut st = self.0.lock().unwrap();
        st.udev.push(("reload", name.into(), udev));
        if how != Suspend::KEEP_IO {
            assert_eq!(how, Suspend::FLUSH, "the daemon never freezes a filesystem");
            st.calls.push(Call::ReloadFlushing { name: name.into() });
        }
        st.calls.push(Call::Reload {
            name: name.into(),
            sectors,
            params: params.into(),
        });
        if !st.maps.contains_key(name) {
            return Err(gone("reload", name));
        }
        if st.hold_loads {
            st.held.push((name.into(), sectors, params.into()));
            return Ok(Load::Running);
        }
        let m = st.maps.get_mut(name).expect("checked above");
        m.sectors = sectors;
        m.params = params.into();
        m.switched = None;
        Ok(Load::Done)
    }

    fn message(&mut self, name: &str, msg: &str) -> Result<(), DmError> {
        let mut st = self.0.lock().unwrap();
        st.calls.push(Call::Message {
            name: name.into(),
            msg: msg.into(),
        });
        let m = st.maps.get_mut(name).ok_or_else(|| gone("message", name))?;
        let mut words = msg.split_whitespace();
        match (words.next(), words.next()) {
            (Some("fail_path"), Some(dev)) => {
                m.failed.insert(dev.to_string());
            }
            (Some("reinstate_path"), Some(dev)) => {
                m.failed.remove(dev);
            }
            (Some("switch_group"), Some(n)) => m.switched = n.parse().ok(),
            _ => {}
        }
        Ok(())
    }

    fn status(&mut self, name: &str) -> Result<String, DmError> {
        let mut st = self.0.lock().unwrap();
        st.status_reads += 1;
        let m = st.maps.get(name).ok_or_else(|| gone("status", name))?;
        st.status_of(m)
    }

    fn remove_map(&mut self, name: &str, deferred: bool) -> Result<(), DmError> {
        let mut st = self.0.lock().unwrap();
        st.calls.push(if deferred {
            Call::RemoveDeferred { name: name.to_string() }
        } else {
            Call::Remove { name: name.to_string() }
        });
        if deferred && st.open_count(name) > 0 {
            // the kernel removes it at the last close
            return Ok(());
        }
        if st.open_count(name) > 0 {
            return Err(DmError::Ioctl {
                op: "remove",
                name: Some(name.to_string()),
                errno: nix::errno::Errno::EBUSY,
            });
        }
        if st.parts.remove(name).is_some() {
            return Ok(());
        }
        st.maps.remove(name).map(|_| ()).ok_or_else(|| gone("remove", name))
    }

    fn open_count(&mut self, name: &str) -> Result<i32, DmError> {
        let st = self.0.lock().unwrap();
        if !st.maps.contains_key(name) && !st.parts.contains_key(name) {
            return Err(gone("info", name));
        }
        Ok(st.open_count(name))
    }

    fn partition_maps(&mut self, name: &str) -> Result<Vec<PartitionMap>, DmError> {
        let st = self.0.lock().unwrap();
        if !st.maps.contains_key(name) {
            return Err(gone("info", name));
        }
        Ok(st
            .parts
            .iter()
            .filter(|(_, (of, _))| of == name)
            .map(|(p, (_, table))| PartitionMap {
                name: p.clone(),
                open_count: st.open_count(p),
                has_table: *table,
            })
            .collect())
    }

    fn suspend(&mut self, name: &str, how: Suspend) -> Result<(), DmError> {
        self.0.lock().unwrap().calls.push(Call::Suspend {
            name: name.to_string(),
            how,
        });
        Ok(())
    }

    fn resume(&mut self, name: &str, udev: MapUdev) -> Result<(), DmError> {
        let mut st = self.0.lock().unwrap();
        st.udev.push(("resume", name.into(), udev));
        st.calls.push(Call::Resume { name: name.to_string() });
        Ok(())
    }
}

pub fn config(text: &str) -> Config {
    parse_str("multipath.conf", text).expect("config parses").config
}

/// The checker loop's report of a check of path `id` that found it `state`.
pub fn outcome(id: u64, state: PathState) -> CheckOutcome {
    CheckOutcome {
        path_id: id,
        result: Verdict::new(state, ""),
        prio: None,
        pr: None,
        took: Duration::from_millis(1),
    }
}

/// The state owner over a [`FakeDm`], and the receiving ends of what it sends out.
pub struct Harness {
    pub owner: Owner,
    pub dm: Arc<Mutex<DmState>>,
    pub checker: Receiver<Control>,
    pub ioerr: Receiver<IoErrEvent>,
    pub reloads: Receiver<Reloaded>,
    /// Device → checker path id, as [`Harness::coldplugged`] found them scheduled.
    pub ids: BTreeMap<String, u64>,
}

impl Harness {
    pub fn with_env(env: Env, conf: &str, dm: DmState, spawn: Option<Spawner>) -> Harness {
        let dm = Arc::new(Mutex::new(dm));
        let (ctx, crx) = unbounded();
        let (itx, irx) = unbounded();
        let (reload, reloads) = Reloader::new();
        let ioerr = match spawn {
            Some(s) => IoErrStat::with_spawner(itx, s),
            None => IoErrStat::new(itx),
        };
        let out = Outputs {
            checker: ctx,
            ioerr,
            reload,
        };
        let owner = Owner::new(config(conf), env, Box::new(FakeDm(dm.clone())), out);
        Harness {
            owner,
            dm,
            checker: crx,
            ioerr: irx,
            reloads,
            ids: BTreeMap::new(),
        }
    }

    /// Everything sent to the checker loop so far.
    pub fn controls(&self) -> Vec<Control> {
        self.checker.try_iter().collect()
    }

    /// Device → checker path id, from the `Schedule` messages.
    pub fn scheduled(&self) -> BTreeMap<String, u64> {
        self.controls()
            .into_iter()
            .filter_map(|c| match c {
                Control::Schedule { req, .. } => {
                    Some((req.dev.file_name().unwrap().to_string_lossy().into_owned(), req.path))
                }
                _ => None,
            })
            .collect()
    }

    /// A check of path `id` that found it `state`, as the checker loop reports it.
    pub fn check(&mut self, id: u64, state: PathState) {
        self.owner.on_check(outcome(id, state));
    }

    /// The daemon over `sys` after its coldplug of [`FakeSys::add_luns`]'s `luns` LUNs
    /// of `hosts` paths each (`find_multipaths greedy`): every map created, every path
    /// checked up once.
    pub fn coldplugged(sys: &FakeSys, luns: u32, hosts: u32) -> Harness {
        sys.add_luns(luns, hosts);
        let conf = "defaults {\n find_multipaths greedy\n}\n";
        let mut h = Harness::with_env(sys.env(), conf, DmState::default(), None);
        h.owner.coldplug();
        let (luns, hosts) = (luns as usize, hosts as usize);
        assert_eq!(h.owner.counts(), (luns * hosts, luns));
        assert_eq!(h.dm.lock().unwrap().maps.len(), luns, "every map created");
        h.ids = h.scheduled();
        for id in h.ids.clone().into_values() {
            h.check(id, PathState::Up);
        }
        // What coldplug and the first checks sent (creates, reinstates) is history.
        h.controls();
        h.dm.lock().unwrap().take_calls();
        let snap = h.owner.snapshot();
        assert!(
            snap.paths.iter().all(|p| p.state == CheckerState::Up),
            "every path checked up"
        );
        h
    }
}
