//! The path state machine: what one checker verdict does to a path and its map.
//!
//! Everything here is pure: the path and map records go in as values together with
//! the verdict, the clock (monotonic seconds) and the selected policy, and come out
//! updated together with the [`Action`]s the state owner must carry out (DM
//! messages, queueing changes, group switches, log lines). The semantics follow
//! upstream multipathd's `update_path_state`, `check_path_reinstate_state`,
//! `set_no_path_retry` and the per-second map ticks.
//!
//! Last-path rule implemented here:
//! * a verdict of the checker itself (down, shaky, timeout, …) always fails the path
//!   in DM, even the last active one: a dead path cannot carry IO and queueing
//!   (`no_path_retry`) is what protects the map then;
//! * a *hold* on a working path (san_path_err threshold, delay_* checks, or the
//!   marginal module's IO-error test) never keeps the path out of a map that has
//!   no other active path: the hold is dropped and the path reinstated (upstream
//!   holds it for one interval when the san_path_err threshold is first crossed
//!   and releases it at the next check; this build releases it at once);
//! * a standby (ghost) path of an implicit-only ALUA target is not reinstated while
//!   the map has no other active path, so DM does not send IO to a standby port.

use std::fmt;

use crate::config::propsel::{Failback, NoPathRetry};

/// Checker states, numbered as upstream `checkers.h` (the order of `show status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PathState {
    Wild,
    Unchecked,
    Down,
    Up,
    Shaky,
    Ghost,
    Pending,
    Timeout,
    Removed,
    Delayed,
    Disconnected,
}

impl PathState {
    pub const ALL: [PathState; 11] = [
        PathState::Wild,
        PathState::Unchecked,
        PathState::Down,
        PathState::Up,
        PathState::Shaky,
        PathState::Ghost,
        PathState::Pending,
        PathState::Timeout,
        PathState::Removed,
        PathState::Delayed,
        PathState::Disconnected,
    ];

    /// The name used by `show status` ("path checker states").
    pub fn name(self) -> &'static str {
        match self {
            PathState::Wild => "wild",
            PathState::Unchecked => "unchecked",
            PathState::Down => "down",
            PathState::Up => "up",
            PathState::Shaky => "shaky",
            PathState::Ghost => "ghost",
            PathState::Pending => "pending",
            PathState::Timeout => "timeout",
            PathState::Removed => "removed",
            PathState::Delayed => "delayed",
            PathState::Disconnected => "disconnected",
        }
    }

    /// Up or ghost: the path can carry IO (ghost = standby port, still usable).
    pub fn is_usable(self) -> bool {
        matches!(self, PathState::Up | PathState::Ghost)
    }
}

impl fmt::Display for PathState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The `%T` (chk_st) text of a path state.
pub fn chk_state_text(state: PathState) -> &'static str {
    match state {
        PathState::Up => "ready",
        PathState::Down => "faulty",
        PathState::Shaky => "shaky",
        PathState::Ghost => "ghost",
        PathState::Pending => "i/o pending",
        PathState::Timeout => "i/o timeout",
        PathState::Delayed => "delayed",
        PathState::Disconnected => "disconnected",
        PathState::Wild | PathState::Unchecked | PathState::Removed => "undef",
    }
}

/// The path's state in the kernel table (`A`/`F` in the DM status line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DmState {
    Undef,
    Active,
    Failed,
}

/// `marginal_pathgroups`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarginalPathgroups {
    Off,
    On,
}

/// The selected configuration values the state machine depends on.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// `polling_interval` (upstream `checkint`), seconds.
    pub polling_interval: u32,
    /// `max_polling_interval`, seconds.
    pub max_polling_interval: u32,
    pub no_path_retry: NoPathRetry,
    pub failback: Failback,
    /// `delay_watch_checks` / `delay_wait_checks`, 0 = off.
    pub delay_watch_checks: u32,
    pub delay_wait_checks: u32,
    /// `san_path_err_threshold` / `_forget_rate` / `_recovery_time`, 0 = off.
    pub san_path_err_threshold: u32,
    pub san_path_err_forget_rate: u32,
    pub san_path_err_recovery_time: u32,
    /// All four `marginal_path_*` options are set (the marginal module is active).
    pub marginal_path_enabled: bool,
    pub marginal_pathgroups: MarginalPathgroups,
    /// `ghost_delay` seconds, 0 = off.
    pub ghost_delay: u32,
    /// `log_checker_err once`: repeated "still down" lines go to verbosity 3.
    pub log_checker_err_once: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            polling_interval: 5,
            max_polling_interval: 20,
            no_path_retry: NoPathRetry::Undef,
            failback: Failback::Manual,
            delay_watch_checks: 0,
            delay_wait_checks: 0,
            san_path_err_threshold: 0,
            san_path_err_forget_rate: 0,
            san_path_err_recovery_time: 0,
            marginal_path_enabled: false,
            marginal_pathgroups: MarginalPathgroups::Off,
            ghost_delay: 0,
            log_checker_err_once: false,
        }
    }
}

/// The san_path_err parameters actually in force for a map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SanPathErr {
    pub threshold: u32,
    pub forget_rate: u32,
    pub recovery_time: u32,
}

impl SanPathErr {
    /// Upstream only runs the check when all three values are positive.
    pub fn enabled(&self) -> bool {
        self.threshold > 0 && self.forget_rate > 0 && self.recovery_time > 0
    }
}

/// Resolves san_path_err_* from the policy as upstream's propsel does: the marginal
/// path check switches it off; `delay_watch_checks`
/// / `delay_wait_checks` map onto it (threshold 1, forget rate = watch checks,
/// recovery time = wait checks × max_polling_interval) unless any san_path_err_*
/// value is set explicitly.
pub fn effective_san_path_err(p: &Policy) -> SanPathErr {
    let off = SanPathErr {
        threshold: 0,
        forget_rate: 0,
        recovery_time: 0,
    };
    if p.marginal_path_enabled {
        return off;
    }
    let explicit = SanPathErr {
        threshold: p.san_path_err_threshold,
        forget_rate: p.san_path_err_forget_rate,
        recovery_time: p.san_path_err_recovery_time,
    };
    if explicit.threshold > 0 || explicit.forget_rate > 0 || explicit.recovery_time > 0 {
        return explicit;
    }
    if p.delay_watch_checks == 0 && p.delay_wait_checks == 0 {
        return off;
    }
    SanPathErr {
        threshold: 1,
        forget_rate: p.delay_watch_checks,
        recovery_time: p.delay_wait_checks.saturating_mul(p.max_polling_interval),
    }
}

/// What the state owner keeps per path for the state machine.
#[derive(Debug, Clone, PartialEq)]
pub struct PathRecord {
    /// Kernel name, e.g. `sdb`.
    pub dev: String,
    /// `major:minor`, e.g. `8:16` (the DM message argument).
    pub dev_t: String,
    /// Checker name for log lines, e.g. `tur`.
    pub checker: String,
    /// The daemon's view (`pp->state`), may be `Delayed`.
    pub state: PathState,
    /// The last raw checker verdict (`pp->chkrstate`).
    pub chkr_state: PathState,
    pub dm_state: DmState,
    /// Seconds until the next check (`pp->tick`), as set by the last update.
    pub tick: u32,
    /// Current check interval (`pp->checkint`), grows while the path stays up.
    pub checkint: u32,
    /// san_path_err: counted bad→good transitions.
    pub path_failures: u32,
    /// san_path_err: good checks left before one failure is forgotten.
    pub forget_countdown: u32,
    /// san_path_err: reinstatement is blocked.
    pub disable_reinstate: bool,
    /// san_path_err: when the block started (monotonic seconds).
    pub dis_reinstate_time: u64,
    /// Path is marginal (only with marginal_pathgroups on/fpin).
    pub marginal: bool,
    /// The target supports only implicit ALUA: keep standby paths out of an
    /// otherwise dead map.
    pub implicit_tpgs_only: bool,
}

impl PathRecord {
    /// A freshly discovered path, never checked.
    pub fn new(dev: &str, dev_t: &str, checker: &str, policy: &Policy) -> PathRecord {
        PathRecord {
            dev: dev.to_string(),
            dev_t: dev_t.to_string(),
            checker: checker.to_string(),
            state: PathState::Unchecked,
            chkr_state: PathState::Unchecked,
            dm_state: DmState::Undef,
            tick: 1,
            checkint: policy.polling_interval,
            path_failures: 0,
            forget_countdown: 0,
            disable_reinstate: false,
            dis_reinstate_time: 0,
            marginal: false,
            implicit_tpgs_only: false,
        }
    }
}

/// What the state owner keeps per map for the state machine.
#[derive(Debug, Clone, PartialEq)]
pub struct MapRecord {
    pub alias: String,
    /// Selected `no_path_retry`; `disablequeueing` turns it into `Fail`.
    pub no_path_retry: NoPathRetry,
    /// `queue_if_no_path` is currently in the kernel features.
    pub queueing: bool,
    pub in_recovery: bool,
    /// Seconds of queueing left (upstream `retry_tick`), 0 = not counting.
    pub retry_tick: u32,
    /// Seconds to a deferred failback (upstream `failback_tick`), 0 = none.
    pub failback_tick: u32,
    /// Seconds left waiting for a non-ghost path before creating the map.
    pub ghost_delay_tick: u32,
    /// Set by `disablequeueing`, cleared by `restorequeueing`.
    pub disable_queueing: bool,
    pub stat_path_failures: u64,
    pub stat_map_failures: u64,
    pub stat_queueing_timeouts: u64,
    pub stat_total_queueing_time: u64,
    pub stat_switch_group: u64,
}

impl MapRecord {
    pub fn new(alias: &str, policy: &Policy, queueing: bool) -> MapRecord {
        MapRecord {
            alias: alias.to_string(),
            no_path_retry: policy.no_path_retry,
            queueing,
            in_recovery: false,
            retry_tick: 0,
            failback_tick: 0,
            ghost_delay_tick: 0,
            disable_queueing: false,
            stat_path_failures: 0,
            stat_map_failures: 0,
            stat_queueing_timeouts: 0,
            stat_total_queueing_time: 0,
            stat_switch_group: 0,
        }
    }

    /// Whether a countdown runs that [`map_tick`] advances; without one the tick
    /// changes nothing, and the owner skips the map without gathering its groups.
    pub fn counting_down(&self) -> bool {
        self.retry_tick > 0 || self.failback_tick > 0 || self.ghost_delay_tick > 0
    }
}

/// Something the state owner must do after an update, in order.
///
/// The log lines after a DM message assume it succeeded. When a message fails,
/// the state owner logs the failure (upstream: `8:16: reinstate failed`) and sets
/// the path's `dm_state` to `Undef`: the next check then sends it again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// A `dmsetup message <map> 0 <text>`, e.g. `fail_path 8:16`.
    DmMessage(String),
    /// Switch the map to path group N (1-based; message `switch_group N`).
    SwitchGroup(usize),
    /// If the path group holding this path is disabled in the kernel, re-enable
    /// it (message `enable_group N`); otherwise nothing.
    EnableGroup,
    /// Message `queue_if_no_path`.
    QueueIfNoPath,
    /// Message `fail_if_no_path`.
    FailIfNoPath,
    /// Reload the map table (groups, marginal split or a delayed creation).
    ReloadMap,
    /// Log line at an upstream verbosity level (0 = error … 4 = debug).
    Log(u8, String),
}

/// A finished check as the state machine sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub state: PathState,
    /// Checker message with its leading space, e.g. ` reports path is down`.
    pub message: String,
    /// The sysfs device state was down (offline): the checker did not run.
    pub offline: bool,
}

impl Verdict {
    pub fn new(state: PathState, message: &str) -> Verdict {
        Verdict {
            state,
            message: message.to_string(),
            offline: false,
        }
    }

    /// A down verdict taken from the sysfs device state.
    pub fn offline() -> Verdict {
        Verdict {
            state: PathState::Down,
            message: String::new(),
            offline: true,
        }
    }
}

/// Facts about the rest of the map at the moment of the update.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MapContext {
    /// Paths of the map other than this one whose daemon state (`PathRecord::state`)
    /// is up or ghost; delayed paths do not count.
    pub other_active_paths: usize,
    /// The marginal module holds this path out (IO-error test running or failed).
    pub marginal_hold: bool,
}

/// The result of [`update_path_state`].
#[derive(Debug, Clone, PartialEq)]
pub struct PathUpdate {
    pub path: PathRecord,
    pub map: MapRecord,
    pub actions: Vec<Action>,
    /// A state change brought the path (back) up: prio must be refreshed.
    pub new_path_up: bool,
    /// The raw checker went from not-usable to usable (followover trigger).
    pub chkr_new_path_up: bool,
    /// The marginal flag flipped (marginal_pathgroups on): the map must be regrouped.
    pub marginal_changed: bool,
}

fn checker_log(level: u8, map: &MapRecord, path: &PathRecord, v: &Verdict, out: &mut Vec<Action>) {
    if v.offline {
        out.push(Action::Log(
            level,
            format!("{}: {} - path offline", map.alias, path.dev),
        ));
    } else if !v.message.is_empty() {
        out.push(Action::Log(
            level,
            format!("{}: {} - {} checker{}", map.alias, path.dev, path.checker, v.message),
        ));
    }
}

/// Queue mode after the map lost a usable path (`update_queue_mode_del_path`).
fn queue_mode_del_path(map: &mut MapRecord, policy: &Policy, active: usize, out: &mut Vec<Action>) {
    if active == 0 {
        enter_recovery_mode(map, policy, out);
        if map.no_path_retry == NoPathRetry::Fail || (map.no_path_retry == NoPathRetry::Undef && !map.queueing) {
            map.stat_map_failures += 1;
        }
    }
    out.push(Action::Log(
        2,
        format!("{}: remaining active paths: {}", map.alias, active),
    ));
}

/// Queue mode after the map gained a usable path (`update_queue_mode_add_path`).
fn queue_mode_add_path(map: &mut MapRecord, active: usize, out: &mut Vec<Action>) {
    if active > 0 {
        leave_recovery_mode(map, out);
    }
    out.push(Action::Log(
        2,
        format!("{}: remaining active paths: {}", map.alias, active),
    ));
}

fn enter_recovery_mode(map: &mut MapRecord, policy: &Policy, out: &mut Vec<Action>) {
    let NoPathRetry::Retries(n) = map.no_path_retry else {
        return;
    };
    if map.in_recovery || n == 0 {
        return;
    }
    map.stat_queueing_timeouts += 1;
    // +1: the per-second tick may run before the first retry interval starts.
    map.retry_tick = n.saturating_mul(policy.polling_interval).saturating_add(1);
    map.in_recovery = true;
    out.push(Action::Log(
        1,
        format!("{}: Entering recovery mode: max_retries={}", map.alias, n),
    ));
}

fn leave_recovery_mode(map: &mut MapRecord, out: &mut Vec<Action>) {
    let was = map.in_recovery;
    map.in_recovery = false;
    map.retry_tick = 0;
    // no_path_retry may have changed while recovering: re-check it.
    if was && matches!(map.no_path_retry, NoPathRetry::Queue | NoPathRetry::Retries(_)) {
        set_queueing(map, true, out);
        out.push(Action::Log(2, format!("{}: queue_if_no_path enabled", map.alias)));
        out.push(Action::Log(1, format!("{}: Recovered to normal mode", map.alias)));
    }
}

fn set_queueing(map: &mut MapRecord, on: bool, out: &mut Vec<Action>) {
    map.queueing = on;
    out.push(if on {
        Action::QueueIfNoPath
    } else {
        Action::FailIfNoPath
    });
}

fn fail_path(
    path: &mut PathRecord,
    map: &mut MapRecord,
    policy: &Policy,
    del_active: Option<usize>,
    out: &mut Vec<Action>,
) {
    out.push(Action::Log(
        2,
        format!("checker failed path {} in map {}", path.dev_t, map.alias),
    ));
    out.push(Action::DmMessage(format!("fail_path {}", path.dev_t)));
    path.dm_state = DmState::Failed;
    if let Some(active) = del_active {
        queue_mode_del_path(map, policy, active, out);
    }
}

fn reinstate_path(path: &mut PathRecord, map: &mut MapRecord, active: usize, out: &mut Vec<Action>) {
    out.push(Action::DmMessage(format!("reinstate_path {}", path.dev_t)));
    out.push(Action::Log(2, format!("{}: reinstated", path.dev_t)));
    path.dm_state = DmState::Active;
    queue_mode_add_path(map, active, out);
}

/// The san_path_err bookkeeping run on every usable verdict (upstream
/// `check_path_reinstate_state`). `path.state` is still the previous state.
/// Returns true when the path must be held out (shown delayed).
fn san_path_hold(
    path: &mut PathRecord,
    san: &SanPathErr,
    other_active: usize,
    now: u64,
    out: &mut Vec<Action>,
) -> bool {
    if !san.enabled() {
        return false;
    }
    if path.disable_reinstate {
        if other_active == 0 {
            out.push(Action::Log(2, format!("{} : reinstating path early", path.dev)));
            san_reset(path);
            return false;
        }
        // Failed again while held: restart the stability window.
        if !matches!(path.state, PathState::Up | PathState::Ghost | PathState::Delayed) {
            path.forget_countdown = san.forget_rate;
            path.dis_reinstate_time = now;
        }
        if now.saturating_sub(path.dis_reinstate_time) > u64::from(san.recovery_time) {
            out.push(Action::Log(
                2,
                format!("{} : reinstate the path after err recovery time", path.dev),
            ));
            san_reset(path);
            return false;
        }
        return true;
    }
    if path.state.is_usable() && path.path_failures > 0 {
        if path.forget_countdown > 0 {
            path.forget_countdown -= 1;
        } else {
            path.path_failures -= 1;
            path.forget_countdown = san.forget_rate;
        }
        return false;
    }
    if !matches!(path.state, PathState::Down | PathState::Shaky | PathState::Timeout) {
        return false;
    }
    if path.path_failures == 0 {
        path.forget_countdown = san.forget_rate;
    }
    path.path_failures += 1;
    if path.path_failures > san.threshold {
        if other_active == 0 {
            // Upstream holds the path for one interval here and releases it at the
            // next check; holding the only usable path is never worth that.
            out.push(Action::Log(2, format!("{} : reinstating path early", path.dev)));
            san_reset(path);
            return false;
        }
        out.push(Action::Log(
            2,
            format!("{} : hit error threshold. Delaying path reinstatement", path.dev),
        ));
        path.dis_reinstate_time = now;
        path.disable_reinstate = true;
        return true;
    }
    false
}

fn san_reset(path: &mut PathRecord) {
    path.path_failures = 0;
    path.disable_reinstate = false;
    path.forget_countdown = 0;
}

/// Applies one finished check to a path of a mapped device.
///
/// `now` is monotonic seconds (only differences matter). `Pending` keeps the old
/// state and asks for a recheck in one second; `Wild`/`Unchecked` mean the checker
/// could not run: nothing changes but a log line.
pub fn update_path_state(
    path: &PathRecord,
    map: &MapRecord,
    verdict: &Verdict,
    ctx: &MapContext,
    policy: &Policy,
    now: u64,
) -> PathUpdate {
    let mut p = path.clone();
    let mut m = map.clone();
    let mut out = Vec::new();
    let mut upd_flags = (false, false, false);
    // Removed devices wait for their uevent; until then they count as down.
    let newstate = if verdict.state == PathState::Removed {
        PathState::Down
    } else {
        verdict.state
    };

    let finish = |mut p: PathRecord, m: MapRecord, out: Vec<Action>, flags: (bool, bool, bool)| {
        if p.tick == 0 {
            p.tick = p.checkint.max(1);
        }
        PathUpdate {
            path: p,
            map: m,
            actions: out,
            new_path_up: flags.0,
            chkr_new_path_up: flags.1,
            marginal_changed: flags.2,
        }
    };
    // Every outcome below sets the next check explicitly; 0 means "use checkint".
    p.tick = 0;

    match newstate {
        PathState::Wild | PathState::Unchecked => {
            out.push(Action::Log(
                2,
                format!("{}: unusable path ({}) - checker failed", p.dev, newstate.name()),
            ));
            checker_log(2, &m, &p, verdict, &mut out);
            return finish(p, m, out, upd_flags);
        }
        PathState::Pending => {
            p.tick = 1;
            return finish(p, m, out, upd_flags);
        }
        _ => {}
    }

    if !newstate.is_usable() && p.state == PathState::Delayed {
        // Bad again while held: drop the delay and check at the base interval.
        p.state = newstate;
        p.checkint = policy.polling_interval;
        // A hold normally covers a path DM already failed; if DM still uses it
        // (the marginal module held a working path), fail it now.
        if matches!(p.dm_state, DmState::Active | DmState::Undef) {
            fail_path(&mut p, &mut m, policy, None, &mut out);
        }
        return finish(p, m, out, upd_flags);
    }

    let san = effective_san_path_err(policy);
    if newstate.is_usable() && (san.enabled() || policy.marginal_path_enabled) {
        let marginal_hold = policy.marginal_path_enabled && ctx.marginal_hold && ctx.other_active_paths > 0;
        if policy.marginal_path_enabled && ctx.marginal_hold && ctx.other_active_paths == 0 {
            out.push(Action::Log(
                2,
                format!("{}: no other active path, ignoring marginal hold", p.dev),
            ));
        }
        let hold = if policy.marginal_path_enabled {
            marginal_hold
        } else {
            san_path_hold(&mut p, &san, ctx.other_active_paths, now, &mut out)
        };
        if hold {
            if !p.marginal && p.state != PathState::Delayed {
                out.push(Action::Log(2, format!("{}: path is now marginal", p.dev)));
            }
            if policy.marginal_pathgroups == MarginalPathgroups::Off {
                // The marginal test wants to see the path again soon to end the hold.
                p.tick = if policy.marginal_path_enabled { 1 } else { 0 };
                p.state = PathState::Delayed;
                return finish(p, m, out, upd_flags);
            }
            if !p.marginal {
                p.marginal = true;
                upd_flags.2 = true;
            }
        } else {
            if p.marginal || p.state == PathState::Delayed {
                out.push(Action::Log(2, format!("{}: path is no longer marginal", p.dev)));
            }
            if policy.marginal_pathgroups != MarginalPathgroups::Off && p.marginal {
                p.marginal = false;
                upd_flags.2 = true;
            }
        }
    }

    let disable_reinstate = newstate == PathState::Ghost && ctx.other_active_paths == 0 && p.implicit_tpgs_only;
    let old_chkr = p.chkr_state;
    p.chkr_state = newstate;

    if newstate != p.state {
        let oldstate = p.state;
        p.state = newstate;
        checker_log(1, &m, &p, verdict, &mut out);
        p.checkint = policy.polling_interval;
        if !newstate.is_usable() {
            let del = if oldstate.is_usable() {
                Some(ctx.other_active_paths)
            } else {
                None
            };
            fail_path(&mut p, &mut m, policy, del, &mut out);
            m.failback_tick = 0;
            m.stat_path_failures += 1;
            return finish(p, m, out, upd_flags);
        }
        if m.ghost_delay_tick > 0 && newstate == PathState::Up {
            // A non-standby path showed up: build the map now.
            m.ghost_delay_tick = 0;
            out.push(Action::ReloadMap);
        }
        if !disable_reinstate {
            reinstate_path(&mut p, &mut m, ctx.other_active_paths + 1, &mut out);
        }
        upd_flags.0 = true;
        if !old_chkr.is_usable() {
            upd_flags.1 = true;
        }
        if newstate == PathState::Up {
            out.push(Action::EnableGroup);
        }
    } else if newstate.is_usable() {
        if matches!(p.dm_state, DmState::Failed | DmState::Undef) && !disable_reinstate {
            // DM still has it failed (IO error in between): clear it.
            reinstate_path(&mut p, &mut m, ctx.other_active_paths + 1, &mut out);
        } else {
            checker_log(4, &m, &p, verdict, &mut out);
            let max = policy.max_polling_interval.max(policy.polling_interval);
            if p.checkint != max {
                p.checkint = if p.checkint < max / 2 {
                    p.checkint.saturating_mul(2).max(1)
                } else {
                    max
                };
                out.push(Action::Log(4, format!("{}: delay next check {}s", p.dev_t, p.checkint)));
            }
        }
    } else {
        if matches!(p.dm_state, DmState::Active | DmState::Undef) {
            fail_path(&mut p, &mut m, policy, None, &mut out);
        }
        if newstate == PathState::Down {
            checker_log(
                if policy.log_checker_err_once { 3 } else { 2 },
                &m,
                &p,
                verdict,
                &mut out,
            );
        }
    }
    p.state = newstate;
    finish(p, m, out, upd_flags)
}

/// The IO-error accounting saw a DM `PATH_FAILED` for a flaky path: mark it failed
/// without a DM message (the kernel already failed it), as upstream's
/// `io_err_stat_handle_pathfail`. `other_active_paths` excludes this path.
pub fn mark_failed(path: &PathRecord, map: &MapRecord, other_active_paths: usize, policy: &Policy) -> PathUpdate {
    let mut p = path.clone();
    let mut m = map.clone();
    let mut out = Vec::new();
    if p.state != PathState::Down {
        out.push(Action::Log(2, format!("{}: mark as failed", p.dev)));
        m.stat_path_failures += 1;
        let old = p.state;
        p.state = PathState::Down;
        p.dm_state = DmState::Failed;
        if old.is_usable() {
            queue_mode_del_path(&mut m, policy, other_active_paths, &mut out);
        }
        p.tick = p.tick.min(policy.polling_interval);
    }
    PathUpdate {
        path: p,
        map: m,
        actions: out,
        new_path_up: false,
        chkr_new_path_up: false,
        marginal_changed: false,
    }
}

/// Per path group facts for failback decisions, in table order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupInfo {
    /// Group priority (average over its usable paths).
    pub prio: i32,
    /// Paths of the group whose state is up or ghost.
    pub enabled_paths: usize,
    /// Every path of the group is marginal.
    pub marginal: bool,
}

/// The group the map should use (1-based), as upstream `select_path_group`: the
/// highest-priority group with usable paths, ties to the one with more usable
/// paths, earlier groups first; marginal groups only if no normal group is usable.
pub fn select_path_group(groups: &[GroupInfo]) -> usize {
    let best_of = |marginal: bool| -> Option<usize> {
        let mut best: Option<(usize, i32, usize)> = None;
        for (i, g) in groups.iter().enumerate() {
            if g.marginal != marginal || g.enabled_paths == 0 {
                continue;
            }
            match best {
                Some((_, prio, n)) if g.prio < prio || (g.prio == prio && g.enabled_paths <= n) => {}
                _ => best = Some((i + 1, g.prio, g.enabled_paths)),
            }
        }
        best.map(|b| b.0)
    };
    best_of(false).or_else(|| best_of(true)).unwrap_or(1)
}

/// Facts for the failback decision that follows a path update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailbackInput<'a> {
    pub groups: &'a [GroupInfo],
    /// The group the kernel uses now (1-based).
    pub current_group: usize,
    /// The group of the checked path (1-based, 0 = unknown).
    pub path_group: usize,
    /// All other paths of the checked path's group have a down/shaky checker state.
    pub others_in_group_down: bool,
    /// Priorities changed, grouping is group_by_prio and failback immediate:
    /// upstream regroups by reloading instead of switching.
    pub prio_regroup: bool,
}

/// Runs the failback step of a check (after [`update_path_state`] and the prio
/// refresh): reload on marginal or prio regrouping, otherwise schedule a deferred
/// failback or switch at once (immediate, or followover when this path was the
/// first of the best group to come back).
pub fn failback_after_check(
    map: &MapRecord,
    upd: &PathUpdate,
    input: &FailbackInput<'_>,
    policy: &Policy,
) -> (MapRecord, Vec<Action>) {
    let mut m = map.clone();
    let mut out = Vec::new();
    if upd.marginal_changed || input.prio_regroup {
        if input.prio_regroup && !upd.marginal_changed {
            out.push(Action::Log(
                2,
                format!("{}: path priorities changed. reloading", m.alias),
            ));
        }
        out.push(Action::ReloadMap);
        return (m, out);
    }
    let best = select_path_group(input.groups);
    if best == input.current_group {
        return (m, out);
    }
    match policy.failback {
        Failback::Deferred(secs) if secs > 0 && (upd.new_path_up || m.failback_tick == 0) => {
            m.failback_tick = secs + 1;
        }
        Failback::Immediate => switch_group(&mut m, best, &mut out),
        Failback::Followover if upd.chkr_new_path_up && input.path_group == best && input.others_in_group_down => {
            switch_group(&mut m, best, &mut out)
        }
        _ => {}
    }
    (m, out)
}

fn switch_group(m: &mut MapRecord, pg: usize, out: &mut Vec<Action>) {
    m.stat_switch_group += 1;
    out.push(Action::SwitchGroup(pg));
    out.push(Action::Log(2, format!("{}: switch to path group #{}", m.alias, pg)));
}

/// The per-second map work of the checker loop (`retry_count_tick`, deferred
/// failback, ghost delay) for `ticks` elapsed seconds.
pub fn map_tick(
    map: &MapRecord,
    ticks: u32,
    groups: &[GroupInfo],
    current_group: usize,
    policy: &Policy,
) -> (MapRecord, Vec<Action>) {
    let mut m = map.clone();
    let mut out = Vec::new();
    for _ in 0..ticks {
        if let Failback::Deferred(_) = policy.failback
            && m.failback_tick > 0
        {
            m.failback_tick -= 1;
            let best = select_path_group(groups);
            if m.failback_tick == 0 && best != current_group {
                switch_group(&mut m, best, &mut out);
            }
        }
        if m.retry_tick > 0 {
            m.stat_total_queueing_time += 1;
            out.push(Action::Log(4, format!("{}: Retrying.. No active path", m.alias)));
            m.retry_tick -= 1;
            if m.retry_tick == 0 {
                m.stat_map_failures += 1;
                set_queueing(&mut m, false, &mut out);
                out.push(Action::Log(2, format!("{}: Disable queueing", m.alias)));
            }
        }
        if m.ghost_delay_tick > 0 {
            m.ghost_delay_tick -= 1;
            if m.ghost_delay_tick == 0 {
                out.push(Action::Log(
                    0,
                    format!("{}: timed out waiting for active path", m.alias),
                ));
                out.push(Action::ReloadMap);
            }
        }
    }
    (m, out)
}

/// Starts the ghost delay for a map created while all its paths were standby.
pub fn start_ghost_delay(map: &MapRecord, policy: &Policy) -> MapRecord {
    let mut m = map.clone();
    m.ghost_delay_tick = policy.ghost_delay;
    m
}

/// Brings the kernel queueing mode in line with `no_path_retry` (upstream
/// `set_no_path_retry`, run after every map sync). `active` = usable paths,
/// `pending` = paths whose checker has not answered yet (no countdown starts
/// while some may still come up).
pub fn sync_queue_mode(map: &MapRecord, active: usize, pending: usize, policy: &Policy) -> (MapRecord, Vec<Action>) {
    let mut m = map.clone();
    let mut out = Vec::new();
    match m.no_path_retry {
        NoPathRetry::Undef => {}
        NoPathRetry::Fail => {
            if m.queueing {
                set_queueing(&mut m, false, &mut out);
            }
        }
        NoPathRetry::Queue => {
            if !m.queueing {
                set_queueing(&mut m, true, &mut out);
            }
        }
        NoPathRetry::Retries(_) => {
            if active > 0 {
                // leave_recovery_mode re-enables queueing itself when recovering.
                if !m.queueing && !m.in_recovery {
                    set_queueing(&mut m, true, &mut out);
                }
                leave_recovery_mode(&mut m, &mut out);
            } else {
                // Timed out already but still queueing: stop it.
                if m.queueing && m.in_recovery && m.retry_tick == 0 {
                    set_queueing(&mut m, false, &mut out);
                }
                if pending == 0 {
                    enter_recovery_mode(&mut m, policy, &mut out);
                }
            }
        }
    }
    (m, out)
}

/// `disablequeueing map M`: stop queueing now and until `restorequeueing`.
pub fn disable_queueing(map: &MapRecord, active: usize) -> (MapRecord, Vec<Action>) {
    let mut m = map.clone();
    let mut out = Vec::new();
    if active == 0 {
        m.stat_map_failures += 1;
    }
    m.retry_tick = 0;
    m.in_recovery = false;
    m.no_path_retry = NoPathRetry::Fail;
    m.disable_queueing = true;
    set_queueing(&mut m, false, &mut out);
    (m, out)
}

/// `restorequeueing map M`: back to the configured `no_path_retry`.
pub fn restore_queueing(map: &MapRecord, active: usize, policy: &Policy) -> (MapRecord, Vec<Action>) {
    let mut m = map.clone();
    m.disable_queueing = false;
    m.no_path_retry = policy.no_path_retry;
    sync_queue_mode(&m, active, 0, policy)
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
