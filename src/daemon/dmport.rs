//! The daemon's device-mapper port over the dm module's backend (ioctls or fake).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::Instant;

use crossbeam_channel::Sender;

use super::owner::{ExistingMap, Load, LoadDone, LoadKind, MapOps, NewMap, PartitionMap};
use crate::dm::udev_cookie::{Patience, UdevOp, op_flags, waited};
use crate::dm::{DmBackend, DmError, MULTIPATH_TARGET, MapUdev, Suspend, TargetLine};

/// Stack of a thread that waits for udev's completion of a new map's cookie.
const UDEV_WAIT_STACK: usize = 128 * 1024;

/// Threads that create a batch of maps side by side. Each create waits in the kernel
/// for more than it computes (the new disk's registration, the table swap's grace
/// periods), so a few overlap their waits on a host of two CPUs.
const CREATE_WORKERS: usize = 4;

/// Adapts any [`DmBackend`] to the owner's narrow [`MapOps`] port. A reload runs on a
/// thread of its own (its suspend may wait minutes for IO in flight on a hung path);
/// its end is sent to `loads`.
pub struct DmPort<B: DmBackend> {
    dm: Arc<B>,
    loads: Sender<LoadDone>,
}

impl<B: DmBackend> DmPort<B> {
    pub fn new(dm: B, loads: Sender<LoadDone>) -> Self {
        DmPort {
            dm: Arc::new(dm),
            loads,
        }
    }
}

/// The one `multipath` line of a map's table or status; anything else is a map
/// that is not ours to manage, reported as a reply of the wrong shape.
fn one_multipath_line(op: &'static str, name: &str, lines: Vec<TargetLine>) -> Result<TargetLine, DmError> {
    let why = match <[TargetLine; 1]>::try_from(lines) {
        Ok([line]) if line.target == MULTIPATH_TARGET => return Ok(line),
        Ok([line]) => format!("target is '{}', not multipath", line.target),
        Err(lines) => format!("{} targets, expected one multipath target", lines.len()),
    };
    Err(DmError::BadReply {
        op,
        name: Some(name.to_string()),
        why,
    })
}

fn targets(sectors: u64, params: &str) -> [TargetLine; 1] {
    [TargetLine {
        start: 0,
        length: sectors,
        target: MULTIPATH_TARGET.to_string(),
        params: params.to_string(),
    }]
}

/// Loads and resumes a map whose device [`DmBackend::create_device`] made; its wait for
/// udev runs on a thread of its own, whose end is sent to `loads`.
fn fill_one<B: DmBackend>(dm: &B, loads: &Sender<LoadDone>, m: &NewMap) -> Result<(u32, Load), DmError> {
    let (info, pending) = dm.fill_created(&m.name, &targets(m.sectors, &m.params), m.udev)?;
    let Some(pending) = pending else {
        return Ok((info.minor, Load::Done));
    };
    // udev's rules for the new map run for about a second under load, one map after
    // the other: waiting here would make the owner create a thousand maps one a second.
    let (map, done) = (m.name.clone(), loads.clone());
    // One a new map, so up to a thousand at once at startup: each waits in semop and
    // logs, and needs little stack. It waits as long as udev is busy (at startup its
    // queue runs for minutes), so the map's next reload still follows udev's create.
    let started = thread::Builder::new()
        .name("udev-wait".into())
        .stack_size(UDEV_WAIT_STACK)
        .spawn(move || {
            let t = Instant::now();
            pending.wait(Patience::WhileUdevBusy);
            let _ = done.send(LoadDone {
                map,
                kind: LoadKind::CreateUdev,
                result: Ok(()),
                took: t.elapsed(),
            });
        });
    match started {
        Ok(_) => Ok((info.minor, Load::Running)),
        Err(e) => {
            // The closure and the cookie in it went with the failed spawn, the cookie's
            // semaphore with them: udev's completion later finds none and only logs.
            log::warn!(
                "{}: cannot start a thread to wait for udev ({e}); going on without waiting",
                m.name
            );
            Ok((info.minor, Load::Done))
        }
    }
}

impl<B: DmBackend + Send + Sync + 'static> MapOps for DmPort<B> {
    fn list_maps(&mut self) -> Result<Vec<ExistingMap>, DmError> {
        let mut maps = Vec::new();
        for dev in self.dm.list()? {
            let info = match self.dm.info(&dev.name) {
                Ok(i) => i,
                // Removed between list and info: not ours to worry about.
                Err(_) => continue,
            };
            if info.uuid.strip_prefix("mpath-").is_none_or(|w| w.is_empty()) {
                continue;
            }
            let table = match self
                .dm
                .table(&dev.name)
                .and_then(|t| one_multipath_line("table", &dev.name, t))
            {
                Ok(t) => t,
                Err(e) => {
                    log::warn!("{}: not adopting: {e}", dev.name);
                    continue;
                }
            };
            let status = self
                .dm
                .status(&dev.name)
                .and_then(|s| one_multipath_line("status", &dev.name, s))
                .map(|l| l.params)
                .unwrap_or_default();
            maps.push(ExistingMap {
                name: dev.name,
                uuid: info.uuid,
                minor: info.minor,
                sectors: table.length,
                table: table.params,
                status,
            });
        }
        Ok(maps)
    }

    fn create_map(&mut self, map: &NewMap) -> Result<(u32, Load), DmError> {
        self.dm.create_device(&map.name, &map.uuid, map.udev)?;
        fill_one(&*self.dm, &self.loads, map)
    }

    /// The batch's devices are made on this thread in the batch's order, so the kernel
    /// numbers them (dm-N) in that order whatever the threads' timing; their tables are
    /// loaded and resumed, where the kernel waits, by up to [`CREATE_WORKERS`] threads
    /// side by side, this one among them (so all are filled even when no thread can be
    /// started).
    fn create_maps(&mut self, batch: &[NewMap]) -> Vec<Result<(u32, Load), DmError>> {
        let (dm, loads) = (&*self.dm, &self.loads);
        // A device made is filled below: its place holds the fill's result then.
        let mut results: Vec<Result<(u32, Load), DmError>> = batch
            .iter()
            .map(|m| {
                dm.create_device(&m.name, &m.uuid, m.udev)
                    .map(|info| (info.minor, Load::Done))
            })
            .collect();
        let next = AtomicUsize::new(0);
        let work = || {
            let mut done = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(map) = batch.get(i) else {
                    return done;
                };
                if results[i].is_ok() {
                    done.push((i, fill_one(dm, loads, map)));
                }
            }
        };
        let done = thread::scope(|s| {
            let helpers: Vec<_> = (1..CREATE_WORKERS.min(batch.len()))
                .filter_map(|_| {
                    thread::Builder::new()
                        .name("dm-create".into())
                        .spawn_scoped(s, work)
                        .ok()
                })
                .collect();
            let mut done = work();
            for h in helpers {
                // A panic in a create is the owner's, as when it created the maps itself.
                done.extend(h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)));
            }
            done
        });
        for (i, r) in done {
            results[i] = r;
        }
        results
    }

    fn reload_map(
        &mut self,
        name: &str,
        sectors: u64,
        params: &str,
        udev: MapUdev,
        how: Suspend,
    ) -> Result<Load, DmError> {
        let table = targets(sectors, params);
        let (dm, map, done) = (Arc::clone(&self.dm), name.to_string(), self.loads.clone());
        let started = thread::Builder::new().name("dm-load".into()).spawn(move || {
            let t = Instant::now();
            let swapped = dm.reload_started(&map, &table, udev, how);
            let took = t.elapsed();
            // The map's next reload follows udev's handling of this one, as libdevmapper
            // orders them; a wait that gives up logs itself.
            let result = swapped.map(waited).map(|_| ());
            // The daemon may be shutting down; then nobody waits for the answer.
            let _ = done.send(LoadDone {
                map,
                kind: LoadKind::Reload,
                result,
                took,
            });
        });
        match started {
            Ok(_) => Ok(Load::Running),
            Err(e) => {
                log::warn!("{name}: cannot start a thread for the reload ({e}); reloading on this one");
                self.dm
                    .reload(name, &targets(sectors, params), udev, how)
                    .map(|_| Load::Done)
            }
        }
    }

    fn message(&mut self, name: &str, msg: &str) -> Result<(), DmError> {
        self.dm.message(name, msg).map(|_| ())
    }

    fn status(&mut self, name: &str) -> Result<String, DmError> {
        let lines = self.dm.status(name)?;
        one_multipath_line("status", name, lines).map(|l| l.params)
    }

    fn remove_map(&mut self, name: &str, deferred: bool) -> Result<(), DmError> {
        self.dm
            .remove(name, op_flags(UdevOp::Remove, MapUdev::default()), deferred)
    }

    fn open_count(&mut self, name: &str) -> Result<i32, DmError> {
        self.dm.info(name).map(|i| i.open_count)
    }

    fn partition_maps(&mut self, name: &str) -> Result<Vec<PartitionMap>, DmError> {
        Ok(self
            .dm
            .partition_maps(name)?
            .into_iter()
            .map(|i| PartitionMap {
                has_table: i.live_table || i.inactive_table,
                open_count: i.open_count,
                name: i.name,
            })
            .collect())
    }

    fn suspend(&mut self, name: &str, how: Suspend) -> Result<(), DmError> {
        self.dm.suspend(name, how).map(|_| ())
    }

    fn resume(&mut self, name: &str, udev: MapUdev) -> Result<(), DmError> {
        self.dm
            .resume(name, Suspend::KEEP_IO, op_flags(UdevOp::Resume, udev))
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Condvar, Mutex};
    use std::time::Duration;

    use super::*;
    use crate::dm::udev_cookie::{UdevSync, Uevent};
    use crate::dm::{DmDevice, DmInfo, FakeDm, PendingUdev, UdevFlags};

    /// The fake device-mapper whose table load waits, up to `WAIT`, for a second load in
    /// flight beside it (loads made in turn each wait the whole time, alone), and whose
    /// first map's create is slower than the others'.
    struct SideBySide {
        dm: FakeDm,
        in_flight: Mutex<InFlight>,
        changed: Condvar,
        /// Set: every resume takes [`SLOW_RESUME`] and sends a uevent whose cookie udev
        /// (a `control` file in the sync's run directory) never completes.
        udev: Option<UdevSync>,
    }

    #[derive(Default)]
    struct InFlight {
        creates: Counts,
        loads: Counts,
    }

    /// Calls of one kind: in flight now, the most there were at once, and those finished.
    #[derive(Default)]
    struct Counts {
        now: usize,
        most: usize,
        done: usize,
    }

    impl Counts {
        fn start(&mut self) {
            self.now += 1;
            self.most = self.most.max(self.now);
        }
        fn finish(&mut self) {
            self.now -= 1;
            self.done += 1;
        }
    }

    const WAIT: Duration = Duration::from_secs(2);
    /// How long the first map's create waits for another to finish first.
    const FIRST_SLOW: Duration = Duration::from_millis(300);
    /// A resume's own time (a suspend waiting for IO) when `SideBySide::udev` is set.
    const SLOW_RESUME: Duration = Duration::from_millis(200);

    impl DmBackend for SideBySide {
        /// The first map's create is slow: it waits for another create to finish first
        /// (for at most [`FIRST_SLOW`]), as a create's wait in the kernel may be longer.
        fn create(&self, name: &str, uuid: &str, udev: UdevFlags) -> Result<DmInfo, DmError> {
            let mut n = self.in_flight.lock().unwrap();
            n.creates.start();
            if name == "mpath0" {
                n = self
                    .changed
                    .wait_timeout_while(n, FIRST_SLOW, |n| n.creates.done == 0)
                    .unwrap()
                    .0;
            }
            let made = self.dm.create(name, uuid, udev);
            n.creates.finish();
            self.changed.notify_all();
            made
        }
        /// A load waits for another to be in flight beside it (for at most [`WAIT`]).
        fn load(&self, name: &str, targets: &[TargetLine]) -> Result<DmInfo, DmError> {
            let mut n = self.in_flight.lock().unwrap();
            n.loads.start();
            self.changed.notify_all();
            let (mut n, _) = self.changed.wait_timeout_while(n, WAIT, |n| n.loads.most < 2).unwrap();
            n.loads.finish();
            drop(n);
            self.dm.load(name, targets)
        }
        fn version(&self) -> Result<[u32; 3], DmError> {
            self.dm.version()
        }
        fn list(&self) -> Result<Vec<DmDevice>, DmError> {
            self.dm.list()
        }
        fn suspend(&self, name: &str, how: Suspend) -> Result<DmInfo, DmError> {
            self.dm.suspend(name, how)
        }
        fn resume_started(
            &self,
            name: &str,
            how: Suspend,
            udev: UdevFlags,
        ) -> Result<(DmInfo, Option<PendingUdev>), DmError> {
            let Some(sync) = &self.udev else {
                return self.dm.resume_started(name, how, udev);
            };
            sync.start("resume", udev, |_| {
                thread::sleep(SLOW_RESUME);
                self.dm.resume(name, how, udev).map(|info| (info, Uevent::Sent))
            })
        }
        fn remove(&self, name: &str, udev: UdevFlags, deferred: bool) -> Result<(), DmError> {
            self.dm.remove(name, udev, deferred)
        }
        fn rename(&self, name: &str, new_name: &str, udev: UdevFlags) -> Result<(), DmError> {
            self.dm.rename(name, new_name, udev)
        }
        fn info(&self, name: &str) -> Result<DmInfo, DmError> {
            self.dm.info(name)
        }
        fn table(&self, name: &str) -> Result<Vec<TargetLine>, DmError> {
            self.dm.table(name)
        }
        fn status(&self, name: &str) -> Result<Vec<TargetLine>, DmError> {
            self.dm.status(name)
        }
        fn message(&self, name: &str, message: &str) -> Result<Option<String>, DmError> {
            self.dm.message(name, message)
        }
        fn arm_poll(&self) -> Result<(), DmError> {
            self.dm.arm_poll()
        }
    }

    /// The port over `SideBySide` without udev; nothing reads its loads.
    fn port() -> DmPort<SideBySide> {
        port_with(None, crossbeam_channel::unbounded().0)
    }

    fn port_with(udev: Option<UdevSync>, loads: Sender<LoadDone>) -> DmPort<SideBySide> {
        let backend = SideBySide {
            dm: FakeDm::new(),
            in_flight: Mutex::new(InFlight::default()),
            changed: Condvar::new(),
            udev,
        };
        DmPort::new(backend, loads)
    }

    fn new_map(i: u32) -> NewMap {
        NewMap {
            name: format!("mpath{i}"),
            uuid: format!("mpath-36000000000000{i}"),
            sectors: 2048,
            params: format!("0 0 1 1 service-time 0 1 1 8:{} 1", 16 * i),
            udev: MapUdev::default(),
        }
    }

    #[test]
    fn a_batch_of_creates_loads_side_by_side_and_answers_in_the_batch_order() {
        let mut port = port();
        let batch: Vec<NewMap> = (0..3).map(new_map).collect();
        let t = Instant::now();
        let results = port.create_maps(&batch);
        // In turn, each load would have waited WAIT for a companion that never came.
        assert!(
            port.dm.in_flight.lock().unwrap().loads.most >= 2,
            "loads never overlapped"
        );
        assert!(t.elapsed() < WAIT, "took {:?}", t.elapsed());
        assert_eq!(results.len(), 3);
        for (m, r) in batch.iter().zip(results) {
            let (minor, load) = r.expect("created");
            assert_eq!(load, Load::Done, "the fake has no udev to wait for");
            assert_eq!(port.dm.info(&m.name).unwrap().minor, minor, "{}'s minor", m.name);
            let table = port.dm.table(&m.name).unwrap();
            assert_eq!(table, targets(m.sectors, &m.params), "{}'s live table", m.name);
        }
    }

    #[test]
    fn a_batch_numbers_its_maps_in_its_order_though_the_first_create_is_slow() {
        let mut port = port();
        let batch: Vec<NewMap> = (0..3).map(new_map).collect();
        let minors: Vec<u32> = port
            .create_maps(&batch)
            .into_iter()
            .map(|r| r.expect("created").0)
            .collect();
        // The kernel gives each new device the lowest free minor: dm-N follows the creates.
        assert_eq!(minors, [0, 1, 2]);
        assert_eq!(port.dm.in_flight.lock().unwrap().creates.most, 1, "creates overlapped");
    }

    #[test]
    fn a_failed_create_in_a_batch_fails_only_its_own_map() {
        let mut port = port();
        let mut batch: Vec<NewMap> = (0..3).map(new_map).collect();
        // The kernel refuses a uuid already in use.
        batch[2].uuid = batch[0].uuid.clone();
        let results = port.create_maps(&batch);
        let failed: Vec<bool> = results.iter().map(Result::is_err).collect();
        assert_eq!(failed.iter().filter(|&&f| f).count(), 1, "{results:?}");
        assert!(!failed[1], "{results:?}");
        assert_eq!(port.dm.list().unwrap().len(), 2);
    }

    #[test]
    fn a_reload_reports_its_own_time_and_ends_after_udev_s_wait() {
        let run = tempfile::tempdir().unwrap();
        std::fs::write(run.path().join("control"), "").unwrap();
        let udev_wait = Duration::from_millis(400);
        let sync = UdevSync {
            disabled: false,
            run_dir: run.path().to_path_buf(),
            timeout: udev_wait,
        };
        let (tx, rx) = crossbeam_channel::unbounded();
        let mut port = port_with(None, tx);
        let maps: Vec<NewMap> = (0..2).map(new_map).collect();
        for r in port.create_maps(&maps) {
            r.expect("created");
        }
        port.dm = Arc::new(SideBySide {
            udev: Some(sync),
            ..Arc::into_inner(port.dm).unwrap()
        });
        // Two, as the fake's loads wait for a second one beside them.
        let params = |m: &NewMap| m.params.replace(" 1 1 8:", " 1 1 9:");
        let t = Instant::now();
        for m in &maps {
            let load = port.reload_map(&m.name, m.sectors, &params(m), m.udev, Suspend::KEEP_IO);
            assert_eq!(load, Ok(Load::Running));
        }
        for _ in &maps {
            let done = rx.recv_timeout(Duration::from_secs(10)).expect("the reload ended");
            let ended = t.elapsed();
            assert_eq!(done.kind, LoadKind::Reload);
            assert!(done.result.is_ok(), "{:?}", done.result);
            // The time logged is the resume's; the answer came after udev's wait gave up.
            assert!(
                done.took >= SLOW_RESUME && done.took < SLOW_RESUME + udev_wait,
                "{} took {:?}",
                done.map,
                done.took
            );
            assert!(ended >= done.took + udev_wait, "{} answered after {ended:?}", done.map);
        }
        for m in &maps {
            assert_eq!(port.dm.table(&m.name).unwrap(), targets(m.sectors, &params(m)));
        }
    }
}
