//! The marginal-path state machine: pure, driven by events and the current time.
//!
//! The daemon's state-owning thread feeds it the relevant facts (dm PATH_FAILED uevents,
//! checker results, test verdicts from the io-err-stat thread, CLI commands) and carries
//! out the returned [`Action`]s. It never touches DM, the clock or threads itself.
//!
//! Semantics follow today's upstream multipathd (fail on the uevent, test once the
//! checker sees the path up again, `delayed` while held, `marginal_pathgroups`), with
//! the original design's guard kept: a map's last usable path is never held back.

use std::collections::BTreeMap;
use std::time::Instant;

use super::config::{MarginalConfig, PathGroups};
use super::status::{MarginalStatus, TestState};

/// Prefix of every line logged on behalf of the IO error accounting.
const P: &str = "io error statistic: ";

/// Inputs to the state machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// dm-multipath sent a `DM_ACTION=PATH_FAILED` uevent for `path` of `map`.
    /// `other_active_paths` counts the map's usable paths other than `path`: the
    /// checker may have failed `path` before the uevent arrives, or not yet, and the
    /// guard must not depend on which came first.
    PathFailed {
        path: String,
        map: String,
        other_active_paths: usize,
        /// The daemon already has the path down (the checker failed it first): a hold
        /// then needs no "mark as failed" of its own.
        path_down: bool,
    },
    /// The path checker found the path up (or ghost). `map_active_paths` counts the map's
    /// active paths; a held path is down and so not among them.
    CheckerSawUp { path: String, map_active_paths: usize },
    /// Live counts from the io-err-stat thread while a test runs.
    TestProgress { path: String, ios: u64, errs: u64 },
    /// The io-err-stat thread finished sampling `path`.
    TestFinished {
        path: String,
        ios: u64,
        errs: u64,
        map_active_paths: usize,
    },
    /// The io-err-stat thread could not start a test (open, io_setup, ...).
    EnqueueFailed { path: String },
    /// The path left the daemon's path list.
    PathRemoved { path: String },
    /// The map was removed; its paths stay in the path list, outside any map.
    MapRemoved { map: String },
    /// The io-err-stat thread died: no test it ran will end.
    TestsLost,
    /// `setmarginal` from the CLI. `dev_t` is the path's `major:minor`.
    SetMarginal { path: String, map: String, dev_t: String },
    /// `unsetmarginal` from the CLI.
    UnsetMarginal { path: String, map: String, dev_t: String },
    /// The number of active paths of `map` changed.
    MapActivePathsChanged { map: String, active: usize },
}

/// What the daemon must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Mark the path failed (state down, DM state failed, queue mode updated) and make
    /// sure DM has it failed (`fail_path`; harmless if the kernel already did).
    FailPath { path: String },
    /// The path is under IO error control: obey [`Action::Delay`] on checker-up results.
    HoldReinstate { path: String },
    /// The path is out of IO error control: it may be reinstated; check it at the next tick.
    ReleaseReinstate { path: String },
    /// Checker saw the path up but it stays down: show `delayed` in `%T`, do not reinstate,
    /// check again at the next tick.
    Delay { path: String },
    /// Set the path's marginal flag (`%M`, JSON `marginal_st`) and reload the map so it
    /// moves into / out of the marginal path group.
    MarkMarginal { path: String, marginal: bool },
    /// Ask the io-err-stat thread to sample the path for `sample_time` seconds with this
    /// latency bound (start the thread first if it is not running).
    EnqueueTest {
        path: String,
        sample_time: u32,
        latency_bound_ms: Option<u32>,
    },
    /// Ask the io-err-stat thread to drop the path's test.
    CancelTest { path: String },
    /// Log `text` at multipathd verbosity `level`.
    Log { level: u8, text: String },
}

impl Action {
    /// The path the action is about (`None` for a log line).
    pub fn path(&self) -> Option<&str> {
        match self {
            Action::FailPath { path }
            | Action::HoldReinstate { path }
            | Action::ReleaseReinstate { path }
            | Action::Delay { path }
            | Action::MarkMarginal { path, .. }
            | Action::EnqueueTest { path, .. }
            | Action::CancelTest { path } => Some(path),
            Action::Log { .. } => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Idle,
    /// One PATH_FAILED seen at `since`; a second one soon after starts the test.
    PreCheck {
        since: Instant,
    },
    /// Held: failed, waiting for the checker to see it up and the recheck gap to pass.
    /// `since` is the last bad verdict (None: test as soon as the path is up); `held` is
    /// when the path started waiting.
    Waiting {
        since: Option<Instant>,
        held: Instant,
    },
    /// Held and under test. `threshold` is `marginal_path_err_rate_threshold` when the
    /// test started: as upstream, a reconfigure during a test does not change the rule
    /// its verdict is judged by (the next test uses the new values).
    Testing {
        threshold: u32,
    },
}

#[derive(Debug, Clone)]
struct PathRecord {
    map: String,
    phase: Phase,
    /// The path's marginal flag as we last set it (via MarkMarginal).
    marginal: bool,
    /// We last told the daemon to show the path `delayed`.
    delayed: bool,
    ios: u64,
    errs: u64,
}

impl PathRecord {
    fn new(map: &str) -> PathRecord {
        PathRecord {
            map: map.to_string(),
            phase: Phase::Idle,
            marginal: false,
            delayed: false,
            ios: 0,
            errs: 0,
        }
    }
    fn held(&self) -> bool {
        matches!(self.phase, Phase::Waiting { .. } | Phase::Testing { .. })
    }
}

/// Error rate in per mille; no reads means no errors.
pub fn rate_permille(ios: u64, errs: u64) -> f64 {
    if ios == 0 {
        0.0
    } else {
        errs as f64 * 1000.0 / ios as f64
    }
}

/// Marginal-path state of all paths. Owned by the daemon's state thread.
#[derive(Debug, Clone)]
pub struct MarginalState {
    default_cfg: MarginalConfig,
    map_cfg: BTreeMap<String, MarginalConfig>,
    paths: BTreeMap<String, PathRecord>,
}

fn log(out: &mut Vec<Action>, level: u8, text: String) {
    out.push(Action::Log { level, text });
}

/// How long (s) after a held path's test became due the daemon keeps checking it every
/// second; then it goes back to its polling interval.
pub const PROMPT_CHECK_WINDOW: u64 = 120;

fn secs_since(now: Instant, then: Instant) -> u64 {
    now.saturating_duration_since(then).as_secs()
}

impl MarginalState {
    /// `cfg` applies to every map without its own settings.
    pub fn new(cfg: MarginalConfig) -> MarginalState {
        MarginalState {
            default_cfg: cfg,
            map_cfg: BTreeMap::new(),
            paths: BTreeMap::new(),
        }
    }

    /// Per-map settings (from the multipaths/devices sections).
    pub fn set_map_config(&mut self, map: &str, cfg: MarginalConfig) {
        self.map_cfg.insert(map.to_string(), cfg);
    }

    fn cfg(&self, map: &str) -> MarginalConfig {
        self.map_cfg.get(map).copied().unwrap_or(self.default_cfg)
    }

    /// Whether the path is held back from reinstatement by IO error accounting.
    pub fn is_held(&self, path: &str) -> bool {
        self.paths.get(path).is_some_and(PathRecord::held)
    }

    /// Whether the path's test starts as soon as the checker sees it up (held, and the
    /// recheck gap since the last bad verdict is over), and became due no more than
    /// [`PROMPT_CHECK_WINDOW`] seconds ago. The daemon then checks it every second rather
    /// than every polling interval, so testing begins within a second of the path working
    /// again; a path that stays dead goes back to the normal interval.
    pub fn test_due(&self, path: &str, now: Instant) -> bool {
        self.paths.get(path).is_some_and(|rec| match rec.phase {
            Phase::Waiting { since, held } => {
                let gap = u64::from(self.cfg(&rec.map).err_recheck_gap_time.unwrap_or(0));
                let due_for = match since {
                    None => Some(secs_since(now, held)),
                    Some(t) => secs_since(now, t).checked_sub(gap + 1),
                };
                due_for.is_some_and(|d| d <= PROMPT_CHECK_WINDOW)
            }
            _ => false,
        })
    }

    /// Feeds one event; returns the actions in the order they must be carried out.
    pub fn handle(&mut self, event: Event, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        match event {
            Event::PathFailed {
                path,
                map,
                other_active_paths,
                path_down,
            } => self.path_failed(&path, &map, other_active_paths, path_down, now, &mut out),
            Event::CheckerSawUp { path, map_active_paths } => {
                self.checker_saw_up(&path, map_active_paths, now, &mut out)
            }
            Event::TestProgress { path, ios, errs } => {
                if let Some(rec) = self.paths.get_mut(&path)
                    && matches!(rec.phase, Phase::Testing { .. })
                {
                    rec.ios = ios;
                    rec.errs = errs;
                }
            }
            Event::TestFinished {
                path,
                ios,
                errs,
                map_active_paths,
            } => self.test_finished(&path, ios, errs, map_active_paths, now, &mut out),
            Event::EnqueueFailed { path } => {
                if let Some(rec) = self.paths.get_mut(&path)
                    && matches!(rec.phase, Phase::Testing { .. })
                {
                    log(&mut out, 3, format!("{P}{path}: enqueue fails, to recover"));
                    // The thread never took the test, so there is nothing to cancel.
                    rec.phase = Phase::Idle;
                    out.push(Action::ReleaseReinstate { path });
                }
            }
            Event::PathRemoved { path } => {
                if let Some(rec) = self.paths.remove(&path)
                    && matches!(rec.phase, Phase::Testing { .. })
                {
                    out.push(Action::CancelTest { path });
                }
            }
            Event::SetMarginal { path, map, dev_t } => {
                log(&mut out, 2, format!("{map}: set marginal path {dev_t} (operator)"));
                self.paths
                    .entry(path.clone())
                    .or_insert_with(|| PathRecord::new(&map))
                    .marginal = true;
                out.push(Action::MarkMarginal { path, marginal: true });
            }
            Event::UnsetMarginal { path, map, dev_t } => {
                log(&mut out, 2, format!("{map}: unset marginal path {dev_t} (operator)"));
                self.paths
                    .entry(path.clone())
                    .or_insert_with(|| PathRecord::new(&map))
                    .marginal = false;
                out.push(Action::MarkMarginal { path, marginal: false });
            }
            Event::MapRemoved { map } => {
                // As upstream's verdict on a path whose map is gone: it is an orphan, and
                // a hold only means something for a path in a map.
                for (path, rec) in self.paths.iter_mut().filter(|(_, r)| r.map == map && r.held()) {
                    log(
                        &mut out,
                        3,
                        format!("{P}{path}: there is orphan path, enable reinstating"),
                    );
                    release(path, rec, &mut out);
                }
            }
            Event::TestsLost => {
                // Nothing tests the held paths any more: give every one back (the checker
                // reinstates those it finds up), as upstream stops holding paths once its
                // thread is not running.
                for (path, rec) in self.paths.iter_mut().filter(|(_, r)| r.held()) {
                    log(&mut out, 2, format!("{P}{path}: test thread gone, enable reinstating"));
                    rec.phase = Phase::Idle;
                    out.push(Action::ReleaseReinstate { path: path.clone() });
                }
            }
            Event::MapActivePathsChanged { map, active } => {
                if active == 0 {
                    // Never leave a map without a usable path: give back every held one.
                    for (path, rec) in self.paths.iter_mut().filter(|(_, r)| r.map == map && r.held()) {
                        log(&mut out, 2, format!("{P}{path}: recover path early"));
                        release(path, rec, &mut out);
                    }
                }
            }
        }
        out
    }

    /// Returns false when the uevent cannot be used (upstream logs that).
    /// A PATH_FAILED uevent. As upstream, a refused or ignored one is not an error
    /// worth a log line of its own (no "cannot handle pathfail uevent").
    fn path_failed(
        &mut self,
        path: &str,
        map: &str,
        others: usize,
        path_down: bool,
        now: Instant,
        out: &mut Vec<Action>,
    ) {
        let cfg = self.cfg(map);
        let rec = self
            .paths
            .entry(path.to_string())
            .or_insert_with(|| PathRecord::new(map));
        rec.map = map.to_string();
        if rec.held() {
            log(out, 3, format!("{P}{path}: reinstate is already disabled"));
            return;
        }
        if !cfg.enabled() {
            log(out, 4, format!("{P}{map}: parameter not set"));
            return;
        }
        // The original design's guard: a path that is the map's only active one is
        // never a candidate for holding back.
        if others == 0 {
            return;
        }
        let window = u64::from(cfg.double_failed_time.unwrap_or(0));
        match rec.phase {
            Phase::PreCheck { since } if secs_since(now, since) <= window => {
                // Second failure within the window: the path looks flaky.
                rec.phase = Phase::Waiting { since: None, held: now };
                out.push(Action::HoldReinstate { path: path.to_string() });
                if !path_down {
                    log(out, 2, format!("{P}{path}: mark as failed"));
                    out.push(Action::FailPath { path: path.to_string() });
                }
            }
            Phase::PreCheck { .. } => {
                log(out, 5, format!("{P}{path}: restart path flakiness pre-checking"));
                rec.phase = Phase::PreCheck { since: now };
            }
            _ => {
                log(out, 5, format!("{P}{path}: start path flakiness pre-checking"));
                rec.phase = Phase::PreCheck { since: now };
            }
        }
    }

    fn checker_saw_up(&mut self, path: &str, active: usize, now: Instant, out: &mut Vec<Action>) {
        let Some(rec) = self.paths.get_mut(path) else {
            return;
        };
        let cfg = self.map_cfg.get(&rec.map).copied().unwrap_or(self.default_cfg);
        if !cfg.enabled() {
            // Turned off by a reconfigure: nothing may stay held or shown delayed. As
            // upstream, whose check then skips the marginal step, nothing is logged.
            if rec.held() {
                release(path, rec, out);
            }
            rec.delayed = false;
            return;
        }
        let skip = rec.held() && need_io_err_check(path, rec, &cfg, active, now, out);
        let grouped = cfg.pathgroups != PathGroups::Off;
        if skip {
            if !rec.marginal && !rec.delayed {
                log(out, 2, format!("{path}: path is now marginal"));
            }
            if grouped {
                if !rec.marginal {
                    rec.marginal = true;
                    out.push(Action::MarkMarginal {
                        path: path.to_string(),
                        marginal: true,
                    });
                }
            } else {
                rec.delayed = true;
                out.push(Action::Delay { path: path.to_string() });
            }
        } else {
            if rec.delayed || (grouped && rec.marginal) {
                log(out, 2, format!("{path}: path is no longer marginal"));
            }
            rec.delayed = false;
            if grouped && rec.marginal {
                rec.marginal = false;
                out.push(Action::MarkMarginal {
                    path: path.to_string(),
                    marginal: false,
                });
            }
        }
    }

    fn test_finished(&mut self, path: &str, ios: u64, errs: u64, active: usize, now: Instant, out: &mut Vec<Action>) {
        let Some(rec) = self.paths.get_mut(path) else {
            log(out, 4, format!("{P}path {path} not found"));
            return;
        };
        // A verdict for a test we already dropped (released early, cancelled) is stale.
        let Phase::Testing { threshold } = rec.phase else {
            return;
        };
        let threshold = f64::from(threshold);
        rec.ios = ios;
        rec.errs = errs;
        let rate = rate_permille(ios, errs);
        log(out, 4, format!("{P}{path}: check end"));
        log(out, 3, format!("{P}{path}: IO error rate ({rate:.1}/1000)"));
        if rate <= threshold {
            log(out, 3, format!("{P}{path}: ({errs}/{ios}) good to enable reinstating"));
            rec.phase = Phase::Idle;
            out.push(Action::ReleaseReinstate { path: path.to_string() });
        } else if active > 0 {
            log(out, 3, format!("{P}{}: keep failing the dm path {path}", rec.map));
            rec.phase = Phase::Waiting {
                since: Some(now),
                held: now,
            };
            log(out, 3, format!("{P}{}: disable reinstating of {path}", rec.map));
        } else {
            log(out, 3, format!("{P}{path}: there is orphan path, enable reinstating"));
            rec.phase = Phase::Idle;
            out.push(Action::ReleaseReinstate { path: path.to_string() });
        }
    }

    /// The accounting view of one path (None if the path never met this module).
    pub fn status(&self, path: &str, now: Instant) -> Option<MarginalStatus> {
        let rec = self.paths.get(path)?;
        let gap = u64::from(self.cfg(&rec.map).err_recheck_gap_time.unwrap_or(0));
        let (state, next_recheck_in) = match rec.phase {
            Phase::Idle => (TestState::Normal, None),
            Phase::PreCheck { .. } => (TestState::PreChecking, None),
            Phase::Waiting { since: None, .. } => (TestState::Delayed, Some(0)),
            Phase::Waiting { since: Some(t), .. } => {
                // The recheck is due once strictly more than `gap` seconds have passed.
                (TestState::Delayed, Some((gap + 1).saturating_sub(secs_since(now, t))))
            }
            Phase::Testing { .. } => (TestState::Testing, None),
        };
        Some(MarginalStatus {
            path: path.to_string(),
            map: rec.map.clone(),
            state,
            // As upstream's `%M`: the path's marginal flag only. With marginal_pathgroups
            // off a held path is kept out of the map (`delayed`), not flagged marginal.
            marginal: rec.marginal,
            ios: rec.ios,
            errs: rec.errs,
            next_recheck_in,
        })
    }

    /// Views of every known path, sorted by path name.
    pub fn statuses(&self, now: Instant) -> Vec<MarginalStatus> {
        self.paths.keys().filter_map(|p| self.status(p, now)).collect()
    }
}

/// Upstream's `need_io_err_check`: true while the path must stay out of the map.
fn need_io_err_check(
    path: &str,
    rec: &mut PathRecord,
    cfg: &MarginalConfig,
    active: usize,
    now: Instant,
    out: &mut Vec<Action>,
) -> bool {
    if active == 0 {
        log(out, 2, format!("{P}{path}: recover path early"));
        release(path, rec, out);
        return false;
    }
    if let Phase::Waiting { since, .. } = rec.phase {
        let gap = cfg.err_recheck_gap_time.unwrap_or(0);
        if since.is_none_or(|t| secs_since(now, t) > u64::from(gap)) {
            log(out, 4, format!("{P}{path}: reschedule checking after {gap} seconds"));
            rec.phase = Phase::Testing {
                threshold: cfg.err_rate_threshold.unwrap_or(0),
            };
            rec.ios = 0;
            rec.errs = 0;
            out.push(Action::EnqueueTest {
                path: path.to_string(),
                sample_time: cfg.err_sample_time.unwrap_or(0),
                latency_bound_ms: cfg.latency_bound_ms,
            });
        }
    }
    true
}

fn release(path: &str, rec: &mut PathRecord, out: &mut Vec<Action>) {
    if matches!(rec.phase, Phase::Testing { .. }) {
        out.push(Action::CancelTest { path: path.to_string() });
    }
    rec.phase = Phase::Idle;
    out.push(Action::ReleaseReinstate { path: path.to_string() });
}
