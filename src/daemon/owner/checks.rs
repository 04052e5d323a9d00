//! What happens on a check result, on the 1 s tick and on an io-err-stat report:
//! the checker and marginal state machines decide, the owner carries out their actions.

use std::time::Instant;

use crate::checkers::CheckOutcome;
use crate::checkers::state::{self as chk, Action as ChkAction, DmState, PathState};
use crate::config::propsel::Failback;
use crate::discovery;
use crate::discovery::pgpolicy::Pgpolicy;
use crate::marginal::state::{Action as MgAction, Event as MgEvent};
use crate::marginal::thread::IoErrEvent;

use super::{Owner, Path, log_at};

impl Owner {
    /// A finished check: run the path state machine and carry out its actions.
    pub fn on_check(&mut self, out: CheckOutcome) {
        let Some(dev) = self.dev_by_id(out.path_id) else {
            return;
        };
        if self.first_prio.contains(&dev) {
            // Its map is set up with this priority, and checks it again.
            self.took_first_prio(&dev, out.prio);
            return;
        }
        let Some(map_name) = self.paths.get(&dev).and_then(|p| p.map.clone()) else {
            return;
        };
        if let Some(pr) = out.pr {
            self.on_pr_outcome(&dev, pr);
        }
        // The kernel changes group and path states on its own (IO errors, group
        // switches): read them before deciding, as upstream does on every check.
        self.refresh_status(&map_name);
        // One clock read for the whole check (a system call under the lab's TCG).
        let now = Instant::now();
        if !self.in_live_table(&map_name, &dev) {
            // A reload in flight brings the path into its map: the kernel would refuse a
            // message naming it (EINVAL). The new table has it active, and every path of
            // the map is checked at once when the load ends.
            log::debug!("{dev}: checked while the reload adding it to {map_name} runs");
            let interval = self.paths.get(&dev).map_or(1, |p| p.rec.checkint.max(1));
            self.check_again(&dev, interval);
            return;
        }
        let usable = matches!(out.result.state, PathState::Up | PathState::Ghost);
        if usable {
            let active = self.active_paths(&map_name);
            let acts = self.marginal.handle(
                MgEvent::CheckerSawUp {
                    path: dev.clone(),
                    map_active_paths: active,
                },
                now,
            );
            self.apply_marginal(acts);
        }
        let others = self.active_paths_except(&map_name, Some(&dev));
        let (Some(p), Some(m)) = (self.paths.get(&dev), self.maps.get(&map_name)) else {
            return;
        };
        let ctx = chk::MapContext {
            other_active_paths: others,
            marginal_hold: self.marginal.is_held(&dev),
        };
        let upd = chk::update_path_state(&p.rec, &m.rec, &out.result, &ctx, &m.policy, self.secs_at(now));
        // As upstream: group_by_prio with failback immediate regroups (reloads) on a
        // changed priority; other policies switch groups through the failback step.
        let regroups = m.pgpolicy == Pgpolicy::GroupByPrio && m.policy.failback == Failback::Immediate;
        let changed = self.refresh_prio(&dev, out.prio);
        let prio_regroup = self.prio_round(&map_name, &dev, changed) && regroups;
        let next = if self.marginal.test_due(&dev, now) {
            upd.path.tick.min(1)
        } else {
            upd.path.tick
        };
        // What the views show of the path and the map changed: it is published.
        let mut shown = changed || out.pr.is_some();
        if let Some(p) = self.paths.get_mut(&dev) {
            // A path that went away may have lost its registration (or missed a key
            // change): it registers again when it comes back.
            if !usable && !matches!(out.result.state, PathState::Pending) {
                p.pr_pending = true;
            }
            shown |= p.rec != upd.path || p.offline != out.result.offline;
            p.rec = upd.path;
            p.offline = out.result.offline;
        }
        if let Some(m) = self.maps.get_mut(&map_name) {
            shown |= m.rec != upd.map;
            m.rec = upd.map;
        }
        if shown {
            self.touch_map(&map_name);
        }
        self.apply_checker_actions(&map_name, upd.actions);
        if usable {
            // Also when the path merely stayed up: the kernel may have left the best
            // group on its own (IO errors), and failback immediate must bring it back.
            self.failback(&map_name, &dev, upd.new_path_up, upd.chkr_new_path_up, prio_regroup);
        }
        let active = self.active_paths(&map_name);
        let acts = self.marginal.handle(
            MgEvent::MapActivePathsChanged {
                map: map_name.clone(),
                active,
            },
            now,
        );
        self.apply_marginal(acts);
        self.check_again(&dev, next);
    }

    /// Whether the kernel's live table of `map` holds `dev`: false only for a path a
    /// reload in flight adds (the last status read, of the live table, lacks it).
    fn in_live_table(&self, map: &str, dev: &str) -> bool {
        let Some(devt) = self.paths.get(dev).map(|p| &p.rec.dev_t) else {
            return true;
        };
        !self.loading(map)
            || self
                .maps
                .get(map)
                .and_then(|m| m.status.as_ref())
                .is_none_or(|st| st.path(devt).is_some())
    }

    /// Per-group facts for failback decisions, in table order, and the group the
    /// kernel uses now (1-based; 1 when the status is unknown).
    fn group_info(&self, map: &str) -> (Vec<chk::GroupInfo>, usize) {
        let Some(m) = self.maps.get(map) else {
            return (Vec::new(), 1);
        };
        let groups = m
            .table
            .groups
            .iter()
            .map(|g| {
                let members: Vec<&Path> = g.paths.iter().filter_map(|tp| self.path_by_devt(&tp.dev)).collect();
                // A path the kernel has failed carries no IO, whatever its last check said.
                let usable = |p: &&Path| {
                    matches!(p.rec.state, PathState::Up | PathState::Ghost) && p.rec.dm_state != DmState::Failed
                };
                let (prio, enabled_paths) =
                    discovery::pgpolicy::pg_priority(members.iter().map(|p| (p.prio, usable(p))));
                chk::GroupInfo {
                    prio,
                    enabled_paths,
                    marginal: !members.is_empty() && members.iter().all(|p| p.rec.marginal),
                }
            })
            .collect();
        // The group the kernel sends the next IO to, as upstream compares its best group with
        // (the group a `switch_group` named, before any IO made it active).
        let current = m.status.as_ref().map_or(1, |st| (st.next_group as usize).max(1));
        (groups, current)
    }

    /// Takes the priority a check refreshed; true when it changed.
    fn refresh_prio(&mut self, dev: &str, prio: Option<i32>) -> bool {
        let Some(new) = prio else { return false };
        let Some(p) = self.paths.get_mut(dev) else {
            return false;
        };
        if p.prio == new {
            return false;
        }
        log::info!("{dev}: prio changed from {} to {new}", p.prio);
        p.prio = new;
        true
    }

    /// Whether the map's priorities are refreshed enough to regroup by them, after
    /// the check of `dev` (`changed`: its priority changed). When one path's priority
    /// changes, upstream refreshes the map's other usable paths before it reloads: a
    /// failover moves every port's state together. Here their checks (which refresh
    /// the priority) run at once, and the regroup waits for their outcomes, so the
    /// map is reloaded once, never with half of its priorities old.
    fn prio_round(&mut self, map: &str, dev: &str, changed: bool) -> bool {
        let Some(m) = self.maps.get_mut(map) else { return false };
        if let Some(wait) = m.prio_wait.as_mut() {
            // Any outcome of a path waited for counts, usable or not: it is all there
            // is to learn until its next check.
            wait.remove(dev);
            if !wait.is_empty() {
                return false;
            }
            m.prio_wait = None;
            return true;
        }
        if !changed {
            return false;
        }
        let others: std::collections::BTreeSet<String> = m
            .paths
            .iter()
            .filter(|d| *d != dev)
            .filter(|d| {
                self.paths
                    .get(*d)
                    .is_some_and(|q| matches!(q.rec.state, PathState::Up | PathState::Ghost))
            })
            .cloned()
            .collect();
        if others.is_empty() {
            return true;
        }
        for d in &others {
            self.schedule_check(d, 0);
        }
        if let Some(m) = self.maps.get_mut(map) {
            m.prio_wait = Some(others);
        }
        false
    }

    /// The failback step after a check of `dev` in `map`.
    fn failback(&mut self, map: &str, dev: &str, new_path_up: bool, chkr_new_path_up: bool, prio_regroup: bool) {
        // Until every path has been checked once, "the best group" is a guess: at startup
        // the first path checked would otherwise pull the map into its own group. A
        // regroup by new priorities does not guess: the plan orders the groups.
        let unknown = self.maps.get(map).is_some_and(|m| {
            m.paths
                .iter()
                .filter_map(|d| self.paths.get(d))
                .any(|p| matches!(p.rec.state, PathState::Unchecked | PathState::Wild))
        });
        if unknown && !prio_regroup {
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
                self.path_by_devt(&tp.dev)
                    .is_none_or(|q| matches!(q.rec.state, PathState::Down | PathState::Shaky))
            })
        });
        let input = chk::FailbackInput {
            groups: &groups,
            current_group: current,
            path_group,
            others_in_group_down: others_down,
            prio_regroup,
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
        if let Some(m) = self.maps.get_mut(map)
            && m.rec != rec
        {
            m.rec = rec;
            self.touch_map(map);
        }
        self.apply_checker_actions(map, acts);
    }

    /// Once a second: queueing countdowns, deferred failback, ghost delay.
    pub fn tick(&mut self) {
        if !self.udev_pending.is_empty() {
            self.retrigger_udev();
        }
        // Most ticks no countdown runs anywhere: nothing to do or publish.
        let names: Vec<String> = (self.maps.iter())
            .filter(|(_, m)| m.rec.counting_down())
            .map(|(n, _)| n.clone())
            .collect();
        for name in names {
            let (groups, current) = self.group_info(&name);
            let Some(m) = self.maps.get(&name) else {
                continue;
            };
            let (rec, acts) = chk::map_tick(&m.rec, 1, &groups, current, &m.policy);
            if rec == m.rec && acts.is_empty() {
                continue;
            }
            self.touch_map(&name);
            if let Some(m) = self.maps.get_mut(&name) {
                m.rec = rec;
            }
            if !acts.is_empty() {
                self.apply_checker_actions(&name, acts);
            }
        }
    }

    pub(super) fn apply_checker_actions(&mut self, map: &str, actions: Vec<ChkAction>) {
        if actions.is_empty() {
            return;
        }
        self.touch_map(map);
        // Only what reached the kernel can have changed its status: a steady check
        // sends nothing and reads the status once, before deciding.
        let to_kernel = actions
            .iter()
            .any(|a| !matches!(a, ChkAction::Log(..) | ChkAction::EnableGroup));
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
        if to_kernel {
            self.refresh_status(map);
        }
    }

    pub(super) fn apply_marginal(&mut self, actions: Vec<MgAction>) {
        for a in actions {
            // The marginal state of the path changed with it (`%M`, `delayed`).
            if let Some(path) = a.path() {
                self.touch_path(path);
            }
            match a {
                MgAction::FailPath { path } => {
                    let target = self.paths.get_mut(&path).and_then(|p| {
                        p.rec.state = PathState::Down;
                        p.rec.dm_state = DmState::Failed;
                        p.map.clone().map(|m| (m, p.rec.dev_t.clone()))
                    });
                    if let Some((map, devt)) = target {
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
                MgAction::EnqueueTest {
                    path,
                    sample_time,
                    latency_bound_ms,
                } => {
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
        if ev == IoErrEvent::Exited {
            log::error!("io error statistic: io_err_stat thread exited, releasing the paths it held");
            // The next test starts a new thread.
            self.out.ioerr.forget_exited();
        }
        let active = ev
            .path()
            .and_then(|d| self.paths.get(d))
            .and_then(|p| p.map.clone())
            .map_or(0, |m| self.active_paths(&m));
        if let Some(dev) = ev.path() {
            self.touch_path(dev);
        }
        let acts = self.marginal.handle(ev.into_event(active), Instant::now());
        self.apply_marginal(acts);
    }
}
