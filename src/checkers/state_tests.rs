use super::*;
use PathState::*;

fn policy() -> Policy {
    Policy {
        polling_interval: 5,
        max_polling_interval: 20,
        ..Policy::default()
    }
}

fn path_in(state: PathState, pol: &Policy) -> PathRecord {
    let mut p = PathRecord::new("sdb", "8:16", "tur", pol);
    p.state = state;
    p.chkr_state = state;
    p.dm_state = if state.is_usable() {
        DmState::Active
    } else {
        DmState::Failed
    };
    p
}

fn map(pol: &Policy) -> MapRecord {
    MapRecord::new("mpatha", pol, false)
}

/// The map's `%Q` text, to check the queueing state a test drove the map into.
fn queueing(m: &MapRecord, active: usize) -> String {
    crate::cli::format::queueing_text(m.no_path_retry, m.retry_tick, active)
}

fn ctx(other_active: usize) -> MapContext {
    MapContext {
        other_active_paths: other_active,
        marginal_hold: false,
    }
}

fn verdict(s: PathState) -> Verdict {
    let msg = match s {
        Up => " reports path is up",
        Down => " reports path is down",
        Ghost => " reports path is ghost",
        _ => "",
    };
    Verdict::new(s, msg)
}

fn dm_messages(a: &[Action]) -> Vec<String> {
    a.iter()
        .filter_map(|x| match x {
            Action::DmMessage(m) => Some(m.clone()),
            _ => None,
        })
        .collect()
}

fn logs(a: &[Action]) -> Vec<(u8, String)> {
    a.iter()
        .filter_map(|x| match x {
            Action::Log(l, m) => Some((*l, m.clone())),
            _ => None,
        })
        .collect()
}

// Rows: previous state; columns: verdict, both in PathState::ALL order
// (wild unchecked down up shaky ghost pending timeout removed delayed disconnected).
// F = fail_path sent, R = reinstate_path sent, - = no DM message.
const TABLE: [(PathState, &str); 11] = [
    (Wild, "--FRFR-FFFF"),
    (Unchecked, "--FRFR-FFFF"),
    (Down, "---RFR-F-FF"),
    (Up, "--F-FR-FFFF"),
    (Shaky, "--FR-R-FFFF"),
    (Ghost, "--FRF--FFFF"),
    (Pending, "--FRFR-FFFF"),
    (Timeout, "--FRFR--FFF"),
    (Removed, "--FRFR-FFFF"),
    (Delayed, "---R-R-----"),
    (Disconnected, "--FRFR-FFF-"),
];

#[test]
fn every_state_and_verdict_pair() {
    let pol = policy();
    for (old, row) in TABLE {
        for (col, new) in PathState::ALL.iter().copied().enumerate() {
            let p = path_in(old, &pol);
            let u = update_path_state(&p, &map(&pol), &verdict(new), &ctx(1), &pol, 100);
            let msgs = dm_messages(&u.actions);
            let want = row.as_bytes()[col];
            let expect_msgs: Vec<String> = match want {
                b'F' => vec!["fail_path 8:16".into()],
                b'R' => vec!["reinstate_path 8:16".into()],
                _ => vec![],
            };
            assert_eq!(msgs, expect_msgs, "{old} + {new}");
            let expect_state = match new {
                Wild | Unchecked | Pending => old,
                Removed => Down,
                s => s,
            };
            assert_eq!(u.path.state, expect_state, "{old} + {new}");
            let expect_dm = match want {
                b'F' => DmState::Failed,
                b'R' => DmState::Active,
                _ => p.dm_state,
            };
            assert_eq!(u.path.dm_state, expect_dm, "{old} + {new}");
            if new == Pending {
                assert_eq!(u.path.tick, 1, "pending rechecks next second");
                assert!(u.actions.is_empty());
            }
            if matches!(new, Wild | Unchecked) {
                assert_eq!(
                    logs(&u.actions)[0],
                    (2, format!("sdb: unusable path ({}) - checker failed", new.name()))
                );
            }
            assert_eq!(u.new_path_up, want == b'R' && old != new, "{old} + {new}");
        }
    }
}

#[test]
fn up_to_down_exact_actions_and_failback_cancel() {
    let pol = Policy {
        no_path_retry: NoPathRetry::Retries(3),
        ..policy()
    };
    let mut m = map(&pol);
    m.failback_tick = 7;
    let u = update_path_state(&path_in(Up, &pol), &m, &verdict(Down), &ctx(0), &pol, 0);
    assert_eq!(
        u.actions,
        vec![
            Action::Log(1, "mpatha: sdb - tur checker reports path is down".into()),
            Action::Log(2, "checker failed path 8:16 in map mpatha".into()),
            Action::DmMessage("fail_path 8:16".into()),
            Action::Log(1, "mpatha: Entering recovery mode: max_retries=3".into()),
            Action::Log(2, "mpatha: remaining active paths: 0".into()),
        ]
    );
    assert_eq!(u.map.failback_tick, 0);
    assert_eq!(u.map.retry_tick, 16);
    assert!(u.map.in_recovery);
    assert_eq!(u.map.stat_path_failures, 1);
    assert_eq!(u.path.checkint, 5);
    assert_eq!(u.path.tick, 5);
}

#[test]
fn offline_device_logs_path_offline() {
    let pol = policy();
    let u = update_path_state(&path_in(Up, &pol), &map(&pol), &Verdict::offline(), &ctx(1), &pol, 0);
    assert_eq!(logs(&u.actions)[0], (1, "mpatha: sdb - path offline".to_string()));
    assert_eq!(dm_messages(&u.actions), vec!["fail_path 8:16"]);
}

#[test]
fn down_to_up_reinstates_and_enables_group() {
    let pol = policy();
    let u = update_path_state(&path_in(Down, &pol), &map(&pol), &verdict(Up), &ctx(1), &pol, 0);
    assert_eq!(
        u.actions,
        vec![
            Action::Log(1, "mpatha: sdb - tur checker reports path is up".into()),
            Action::DmMessage("reinstate_path 8:16".into()),
            Action::Log(2, "8:16: reinstated".into()),
            Action::Log(2, "mpatha: remaining active paths: 2".into()),
            Action::EnableGroup,
        ]
    );
    assert!(u.new_path_up && u.chkr_new_path_up);
}

#[test]
fn up_path_failed_in_dm_is_reinstated_without_state_change() {
    let pol = policy();
    let mut p = path_in(Up, &pol);
    p.dm_state = DmState::Failed;
    let u = update_path_state(&p, &map(&pol), &verdict(Up), &ctx(1), &pol, 0);
    assert_eq!(dm_messages(&u.actions), vec!["reinstate_path 8:16"]);
    assert!(!u.new_path_up);
    assert_eq!(u.path.checkint, 5, "no growth on the reinstating check");
}

#[test]
fn still_down_but_active_in_dm_is_failed_again_without_queue_change() {
    let pol = Policy {
        no_path_retry: NoPathRetry::Retries(2),
        ..policy()
    };
    let mut p = path_in(Down, &pol);
    p.dm_state = DmState::Active;
    let u = update_path_state(&p, &map(&pol), &verdict(Down), &ctx(0), &pol, 0);
    assert_eq!(
        u.actions,
        vec![
            Action::Log(2, "checker failed path 8:16 in map mpatha".into()),
            Action::DmMessage("fail_path 8:16".into()),
            Action::Log(2, "mpatha: sdb - tur checker reports path is down".into()),
        ]
    );
    assert!(!u.map.in_recovery);
}

#[test]
fn log_checker_err_once_demotes_repeated_down_lines() {
    for (once, level) in [(false, 2), (true, 3)] {
        let pol = Policy {
            log_checker_err_once: once,
            ..policy()
        };
        let u = update_path_state(&path_in(Down, &pol), &map(&pol), &verdict(Down), &ctx(1), &pol, 0);
        assert_eq!(
            u.actions,
            vec![Action::Log(
                level,
                "mpatha: sdb - tur checker reports path is down".into()
            )]
        );
    }
}

#[test]
fn interval_doubles_up_to_max_and_resets_on_change() {
    let pol = policy();
    let mut p = path_in(Up, &pol);
    let m = map(&pol);
    let mut seen = vec![];
    for _ in 0..4 {
        p = update_path_state(&p, &m, &verdict(Up), &ctx(1), &pol, 0).path;
        seen.push((p.checkint, p.tick));
    }
    assert_eq!(seen, vec![(10, 10), (20, 20), (20, 20), (20, 20)]);
    let u = update_path_state(&p, &m, &verdict(Ghost), &ctx(1), &pol, 0);
    assert_eq!((u.path.checkint, u.path.tick), (5, 5));

    // A max that is not a power-of-two multiple is reached exactly.
    let pol = Policy {
        max_polling_interval: 30,
        ..policy()
    };
    let mut p = path_in(Up, &pol);
    let mut seen = vec![];
    for _ in 0..4 {
        p = update_path_state(&p, &m, &verdict(Up), &ctx(1), &pol, 0).path;
        seen.push(p.checkint);
    }
    assert_eq!(seen, vec![10, 20, 30, 30]);
    let u = update_path_state(&p, &m, &verdict(Up), &ctx(1), &pol, 0);
    assert!(logs(&u.actions).iter().all(|(_, t)| !t.contains("delay next check")));
}

#[test]
fn growth_logs_at_debug_level() {
    let pol = policy();
    let u = update_path_state(&path_in(Up, &pol), &map(&pol), &verdict(Up), &ctx(1), &pol, 0);
    assert_eq!(
        logs(&u.actions),
        vec![
            (4, "mpatha: sdb - tur checker reports path is up".to_string()),
            (4, "8:16: delay next check 10s".to_string())
        ]
    );
}

#[test]
fn standby_path_of_implicit_alua_target_is_not_reinstated_alone() {
    let pol = policy();
    let mut p = path_in(Down, &pol);
    p.implicit_tpgs_only = true;
    let u = update_path_state(&p, &map(&pol), &verdict(Ghost), &ctx(0), &pol, 0);
    assert!(dm_messages(&u.actions).is_empty());
    assert_eq!(u.path.state, Ghost);
    // With another active path it is reinstated.
    let u = update_path_state(&p, &map(&pol), &verdict(Ghost), &ctx(1), &pol, 0);
    assert_eq!(dm_messages(&u.actions), vec!["reinstate_path 8:16"]);
}

// ---- no_path_retry ----

fn fail_last(pol: &Policy, queueing: bool) -> PathUpdate {
    let m = MapRecord::new("mpatha", pol, queueing);
    update_path_state(&path_in(Up, pol), &m, &verdict(Down), &ctx(0), pol, 0)
}

#[test]
fn no_path_retry_countdown_then_fail_then_recover() {
    let pol = Policy {
        no_path_retry: NoPathRetry::Retries(2),
        ..policy()
    };
    let u = fail_last(&pol, true);
    assert_eq!(u.map.retry_tick, 11);
    assert_eq!(queueing(&u.map, 0), "11 sec");
    let (m, a) = map_tick(&u.map, 10, &[], 1, &pol);
    assert!(!a.contains(&Action::FailIfNoPath));
    assert_eq!(m.retry_tick, 1);
    assert_eq!(m.stat_total_queueing_time, 10);
    let (m, a) = map_tick(&m, 1, &[], 1, &pol);
    assert_eq!(
        a,
        vec![
            Action::Log(4, "mpatha: Retrying.. No active path".into()),
            Action::FailIfNoPath,
            Action::Log(2, "mpatha: Disable queueing".into()),
        ]
    );
    assert!(!m.queueing && m.in_recovery);
    assert_eq!(m.stat_map_failures, 1);
    assert_eq!(queueing(&m, 0), "off");
    // Further ticks do nothing.
    let (m2, a) = map_tick(&m, 5, &[], 1, &pol);
    assert!(a.is_empty());
    assert_eq!(m2, m);
    // The path returns: queueing is re-enabled.
    let u = update_path_state(&u.path, &m, &verdict(Up), &ctx(0), &pol, 20);
    let a: Vec<_> = u
        .actions
        .iter()
        .filter(|a| !matches!(a, Action::Log(1, t) if t.contains("checker")))
        .cloned()
        .collect();
    assert_eq!(
        a,
        vec![
            Action::DmMessage("reinstate_path 8:16".into()),
            Action::Log(2, "8:16: reinstated".into()),
            Action::QueueIfNoPath,
            Action::Log(2, "mpatha: queue_if_no_path enabled".into()),
            Action::Log(1, "mpatha: Recovered to normal mode".into()),
            Action::Log(2, "mpatha: remaining active paths: 1".into()),
            Action::EnableGroup,
        ]
    );
    assert!(u.map.queueing && !u.map.in_recovery && u.map.retry_tick == 0);
    assert_eq!(queueing(&u.map, 1), "2 chk");
}

#[test]
fn no_path_retry_path_back_before_timeout_stops_countdown() {
    let pol = Policy {
        no_path_retry: NoPathRetry::Retries(4),
        ..policy()
    };
    let u = fail_last(&pol, true);
    let (m, _) = map_tick(&u.map, 3, &[], 1, &pol);
    let u = update_path_state(&u.path, &m, &verdict(Up), &ctx(0), &pol, 3);
    assert_eq!(u.map.retry_tick, 0);
    assert!(u.actions.contains(&Action::QueueIfNoPath));
    let (m, a) = map_tick(&u.map, 100, &[], 1, &pol);
    assert!(a.is_empty() && m.queueing);
}

#[test]
fn no_path_retry_queue_and_fail_never_count_down() {
    for (npr, failures) in [(NoPathRetry::Queue, 0), (NoPathRetry::Fail, 1)] {
        let pol = Policy {
            no_path_retry: npr,
            ..policy()
        };
        let u = fail_last(&pol, npr == NoPathRetry::Queue);
        assert_eq!(u.map.retry_tick, 0);
        assert!(!u.map.in_recovery);
        assert_eq!(u.map.stat_map_failures, failures, "{npr:?}");
        let (_, a) = map_tick(&u.map, 1000, &[], 1, &pol);
        assert!(a.is_empty());
    }
    let pol = Policy {
        no_path_retry: NoPathRetry::Undef,
        ..policy()
    };
    assert_eq!(fail_last(&pol, false).map.stat_map_failures, 1);
    assert_eq!(fail_last(&pol, true).map.stat_map_failures, 0);
}

#[test]
fn sync_queue_mode_follows_no_path_retry() {
    let p = |npr| Policy {
        no_path_retry: npr,
        ..policy()
    };
    let m = |pol: &Policy, q| MapRecord::new("mpatha", pol, q);
    let pol = p(NoPathRetry::Fail);
    assert_eq!(
        sync_queue_mode(&m(&pol, true), 1, 0, &pol).1,
        vec![Action::FailIfNoPath]
    );
    assert!(sync_queue_mode(&m(&pol, false), 1, 0, &pol).1.is_empty());
    let pol = p(NoPathRetry::Queue);
    assert_eq!(
        sync_queue_mode(&m(&pol, false), 0, 0, &pol).1,
        vec![Action::QueueIfNoPath]
    );
    let pol = p(NoPathRetry::Undef);
    assert!(sync_queue_mode(&m(&pol, true), 0, 0, &pol).1.is_empty());
    let pol = p(NoPathRetry::Retries(2));
    assert_eq!(
        sync_queue_mode(&m(&pol, false), 1, 0, &pol).1,
        vec![Action::QueueIfNoPath]
    );
    // No usable path at sync: countdown starts, unless a check is still pending.
    let (mm, a) = sync_queue_mode(&m(&pol, true), 0, 0, &pol);
    assert_eq!(mm.retry_tick, 11);
    assert_eq!(
        a,
        vec![Action::Log(1, "mpatha: Entering recovery mode: max_retries=2".into())]
    );
    let (mm, a) = sync_queue_mode(&m(&pol, true), 0, 1, &pol);
    assert!(a.is_empty() && mm.retry_tick == 0);
    // Timed out but the kernel still queues: stop it.
    let mut timed_out = m(&pol, true);
    timed_out.in_recovery = true;
    assert_eq!(sync_queue_mode(&timed_out, 0, 0, &pol).1, vec![Action::FailIfNoPath]);
}

#[test]
fn disablequeueing_overrides_until_restored() {
    let pol = Policy {
        no_path_retry: NoPathRetry::Retries(2),
        ..policy()
    };
    let u = fail_last(&pol, true);
    let (m, a) = disable_queueing(&u.map, 0);
    assert_eq!(a, vec![Action::FailIfNoPath]);
    assert_eq!(
        (m.no_path_retry, m.retry_tick, m.disable_queueing),
        (NoPathRetry::Fail, 0, true)
    );
    assert_eq!(m.stat_map_failures, 1);
    assert_eq!(queueing(&m, 0), "off");
    // A path coming back does not re-enable queueing while disabled.
    let u2 = update_path_state(&u.path, &m, &verdict(Up), &ctx(0), &pol, 1);
    assert!(!u2.actions.contains(&Action::QueueIfNoPath));
    let (m, a) = restore_queueing(&u2.map, 1, &pol);
    assert_eq!(a, vec![Action::QueueIfNoPath]);
    assert_eq!(m.no_path_retry, NoPathRetry::Retries(2));
    assert!(!m.disable_queueing);
}

// ---- san_path_err / delay_* ----

fn san_policy() -> Policy {
    Policy {
        san_path_err_threshold: 2,
        san_path_err_forget_rate: 3,
        san_path_err_recovery_time: 30,
        ..policy()
    }
}

/// Drives a sequence of verdicts, one per `step` seconds, returning the states.
fn drive(pol: &Policy, p: &mut PathRecord, seq: &[PathState], now: &mut u64, other_active: usize) -> Vec<PathState> {
    let m = map(pol);
    seq.iter()
        .map(|s| {
            *now += 5;
            *p = update_path_state(p, &m, &verdict(*s), &ctx(other_active), pol, *now).path;
            p.state
        })
        .collect()
}

#[test]
fn san_path_err_threshold_delays_then_recovery_time_reinstates() {
    let pol = san_policy();
    let mut p = path_in(Up, &pol);
    let mut now = 0;
    // Two flaps are within the threshold, the third exceeds it.
    let s = drive(&pol, &mut p, &[Down, Up, Down, Up, Down, Up], &mut now, 1);
    assert_eq!(s, vec![Down, Up, Down, Up, Down, Delayed]);
    assert!(p.disable_reinstate);
    assert_eq!(p.path_failures, 3);
    assert_eq!(p.dm_state, DmState::Failed);
    assert_eq!(p.dis_reinstate_time, 30);
    // Held while less than recovery_time (30 s) passed.
    let s = drive(&pol, &mut p, &[Up; 5], &mut now, 1);
    assert_eq!(s, vec![Delayed; 5]);
    assert_eq!(now, 55);
    // 60 - 30 = 30 is not > 30; 65 - 30 is.
    let s = drive(&pol, &mut p, &[Up, Up], &mut now, 1);
    assert_eq!(s, vec![Delayed, Up]);
    assert_eq!(p.dm_state, DmState::Active);
    assert_eq!((p.path_failures, p.disable_reinstate), (0, false));
}

#[test]
fn san_path_err_hold_logs() {
    let pol = san_policy();
    let mut p = path_in(Up, &pol);
    p.path_failures = 2;
    p.state = Down;
    p.dm_state = DmState::Failed;
    let u = update_path_state(&p, &map(&pol), &verdict(Up), &ctx(1), &pol, 7);
    assert_eq!(
        u.actions,
        vec![
            Action::Log(2, "sdb : hit error threshold. Delaying path reinstatement".into()),
            Action::Log(2, "sdb: path is now marginal".into()),
        ]
    );
    assert_eq!(u.path.state, Delayed);
    assert_eq!(u.path.tick, 5);
    // A down verdict while delayed cancels the delay silently and restarts the window.
    let d = update_path_state(&u.path, &u.map, &verdict(Down), &ctx(1), &pol, 20);
    assert_eq!(d.path.state, Down);
    assert!(d.actions.is_empty());
    let back = update_path_state(&d.path, &d.map, &verdict(Up), &ctx(1), &pol, 25);
    assert_eq!(back.path.state, Delayed);
    assert_eq!(back.path.dis_reinstate_time, 25);
    // No longer marginal once released.
    let rel = update_path_state(&back.path, &back.map, &verdict(Up), &ctx(1), &pol, 56);
    assert_eq!(
        logs(&rel.actions)[..2],
        [
            (2, "sdb : reinstate the path after err recovery time".to_string()),
            (2, "sdb: path is no longer marginal".to_string())
        ]
    );
}

#[test]
fn san_path_err_held_path_is_reinstated_early_when_map_has_no_active_path() {
    let pol = san_policy();
    let mut p = path_in(Delayed, &pol);
    p.disable_reinstate = true;
    p.path_failures = 3;
    p.dis_reinstate_time = 100;
    let u = update_path_state(&p, &map(&pol), &verdict(Up), &ctx(0), &pol, 101);
    assert_eq!(logs(&u.actions)[0], (2, "sdb : reinstating path early".to_string()));
    assert_eq!(u.path.state, Up);
    assert_eq!(dm_messages(&u.actions), vec!["reinstate_path 8:16"]);
}

#[test]
fn san_path_err_threshold_never_holds_the_only_usable_path() {
    let pol = san_policy();
    let mut p = path_in(Down, &pol);
    p.path_failures = 2;
    p.forget_countdown = 3;
    let u = update_path_state(&p, &map(&pol), &verdict(Up), &ctx(0), &pol, 50);
    assert_eq!(logs(&u.actions)[0], (2, "sdb : reinstating path early".to_string()));
    assert_eq!(u.path.state, Up);
    assert_eq!((u.path.path_failures, u.path.disable_reinstate), (0, false));
    assert_eq!(dm_messages(&u.actions), vec!["reinstate_path 8:16"]);
}

#[test]
fn san_path_err_forgets_one_failure_per_forget_rate_good_checks() {
    let pol = san_policy();
    let mut p = path_in(Up, &pol);
    let mut now = 0;
    drive(&pol, &mut p, &[Down, Up, Down, Up], &mut now, 1);
    assert_eq!((p.path_failures, p.forget_countdown), (2, 3));
    // forget_rate 3: the countdown runs 3,2,1,0, then one failure is forgotten.
    let mut failures = vec![];
    for _ in 0..8 {
        drive(&pol, &mut p, &[Up], &mut now, 1);
        failures.push(p.path_failures);
    }
    assert_eq!(failures, vec![2, 2, 2, 1, 1, 1, 1, 0]);
    // Now two more flaps are tolerated again.
    let s = drive(&pol, &mut p, &[Down, Up, Down, Up], &mut now, 1);
    assert_eq!(s, vec![Down, Up, Down, Up]);
}

#[test]
fn san_path_err_needs_all_three_values() {
    let pol = Policy {
        san_path_err_recovery_time: 0,
        ..san_policy()
    };
    let mut p = path_in(Up, &pol);
    let mut now = 0;
    let s = drive(&pol, &mut p, &[Down, Up, Down, Up, Down, Up, Down, Up], &mut now, 1);
    assert_eq!(*s.last().unwrap(), Up);
    assert_eq!(p.path_failures, 0);
}

#[test]
fn delay_checks_map_onto_san_path_err() {
    let base = policy();
    let watch_wait = Policy {
        delay_watch_checks: 4,
        delay_wait_checks: 3,
        ..base.clone()
    };
    assert_eq!(
        effective_san_path_err(&watch_wait),
        SanPathErr {
            threshold: 1,
            forget_rate: 4,
            recovery_time: 60
        }
    );
    let watch_only = Policy {
        delay_watch_checks: 4,
        ..base.clone()
    };
    assert!(!effective_san_path_err(&watch_only).enabled());
    // Explicit san_path_err_* win over delay_*.
    let both = Policy {
        san_path_err_threshold: 5,
        ..watch_wait.clone()
    };
    assert_eq!(effective_san_path_err(&both).threshold, 5);
    assert_eq!(effective_san_path_err(&both).forget_rate, 0);
    // The marginal path check switches it off.
    let marg = Policy {
        marginal_path_enabled: true,
        ..san_policy()
    };
    assert!(!effective_san_path_err(&marg).enabled());

    // delay_watch 4 / wait 3: the second flap holds the path for 60 s.
    let mut p = path_in(Up, &watch_wait);
    let mut now = 0;
    let s = drive(&watch_wait, &mut p, &[Down, Up, Down, Up], &mut now, 1);
    assert_eq!(s, vec![Down, Up, Down, Delayed]);
}

// ---- marginal module hold ----

#[test]
fn marginal_hold_shows_delayed_and_rechecks_next_second() {
    let pol = Policy {
        marginal_path_enabled: true,
        ..policy()
    };
    let p = path_in(Down, &pol);
    let c = MapContext {
        other_active_paths: 1,
        marginal_hold: true,
    };
    let u = update_path_state(&p, &map(&pol), &verdict(Up), &c, &pol, 0);
    assert_eq!(u.path.state, Delayed);
    assert_eq!(u.path.tick, 1);
    assert_eq!(u.actions, vec![Action::Log(2, "sdb: path is now marginal".into())]);
    // Still held: no repeated log.
    let u2 = update_path_state(&u.path, &u.map, &verdict(Up), &c, &pol, 1);
    assert!(u2.actions.is_empty());
    // Released by the marginal module.
    let u3 = update_path_state(&u2.path, &u2.map, &verdict(Up), &ctx(1), &pol, 2);
    assert_eq!(logs(&u3.actions)[0], (2, "sdb: path is no longer marginal".to_string()));
    assert_eq!(dm_messages(&u3.actions), vec!["reinstate_path 8:16"]);
}

#[test]
fn delayed_path_still_active_in_dm_is_failed_when_it_goes_bad() {
    let pol = Policy {
        marginal_path_enabled: true,
        ..policy()
    };
    let mut p = path_in(Delayed, &pol);
    p.dm_state = DmState::Active;
    let u = update_path_state(&p, &map(&pol), &verdict(Down), &ctx(1), &pol, 0);
    assert_eq!(u.path.state, Down);
    assert_eq!(dm_messages(&u.actions), vec!["fail_path 8:16"]);
    assert_eq!(u.path.dm_state, DmState::Failed);
}

#[test]
fn marginal_hold_never_keeps_the_last_path_out() {
    let pol = Policy {
        marginal_path_enabled: true,
        ..policy()
    };
    let c = MapContext {
        other_active_paths: 0,
        marginal_hold: true,
    };
    let u = update_path_state(&path_in(Down, &pol), &map(&pol), &verdict(Up), &c, &pol, 0);
    assert_eq!(u.path.state, Up);
    assert_eq!(
        logs(&u.actions)[0],
        (2, "sdb: no other active path, ignoring marginal hold".to_string())
    );
    assert_eq!(dm_messages(&u.actions), vec!["reinstate_path 8:16"]);
}

#[test]
fn marginal_pathgroups_on_reinstates_into_marginal_group() {
    let pol = Policy {
        marginal_path_enabled: true,
        marginal_pathgroups: MarginalPathgroups::On,
        ..policy()
    };
    let c = MapContext {
        other_active_paths: 1,
        marginal_hold: true,
    };
    let u = update_path_state(&path_in(Down, &pol), &map(&pol), &verdict(Up), &c, &pol, 0);
    assert_eq!(u.path.state, Up);
    assert!(u.path.marginal && u.marginal_changed);
    assert_eq!(dm_messages(&u.actions), vec!["reinstate_path 8:16"]);
    let (_, a) = failback_after_check(&u.map, &u, &fb(&[], 1, 1, false), &pol);
    assert_eq!(a, vec![Action::ReloadMap]);
    let u2 = update_path_state(&u.path, &u.map, &verdict(Up), &ctx(1), &pol, 5);
    assert!(!u2.path.marginal && u2.marginal_changed);
    assert_eq!(logs(&u2.actions)[0], (2, "sdb: path is no longer marginal".to_string()));
}

#[test]
fn mark_failed_by_io_error_accounting() {
    let pol = Policy {
        no_path_retry: NoPathRetry::Queue,
        ..policy()
    };
    let mut p = path_in(Up, &pol);
    p.tick = 20;
    let u = mark_failed(&p, &map(&pol), 2, &pol);
    assert_eq!(
        u.actions,
        vec![
            Action::Log(2, "sdb: mark as failed".into()),
            Action::Log(2, "mpatha: remaining active paths: 2".into()),
        ]
    );
    assert_eq!((u.path.state, u.path.dm_state, u.path.tick), (Down, DmState::Failed, 5));
    assert!(mark_failed(&u.path, &u.map, 2, &pol).actions.is_empty());
}

// ---- failback ----

fn fb(groups: &[GroupInfo], current: usize, path_group: usize, others_down: bool) -> FailbackInput<'_> {
    FailbackInput {
        groups,
        current_group: current,
        path_group,
        others_in_group_down: others_down,
        prio_regroup: false,
    }
}

const G: fn(i32, usize) -> GroupInfo = |prio, enabled_paths| GroupInfo {
    prio,
    enabled_paths,
    marginal: false,
};

#[test]
fn select_path_group_rules() {
    assert_eq!(select_path_group(&[G(10, 1), G(50, 1)]), 2);
    assert_eq!(select_path_group(&[G(50, 0), G(10, 1)]), 2);
    assert_eq!(select_path_group(&[G(50, 1), G(50, 2)]), 2);
    assert_eq!(select_path_group(&[G(50, 2), G(50, 2)]), 1);
    assert_eq!(select_path_group(&[G(0, 0), G(0, 0)]), 1);
    let marginal = GroupInfo {
        prio: 90,
        enabled_paths: 2,
        marginal: true,
    };
    assert_eq!(select_path_group(&[marginal, G(1, 1)]), 2);
    assert_eq!(select_path_group(&[marginal, G(1, 0)]), 1);
}

fn path_back_up(pol: &Policy) -> PathUpdate {
    update_path_state(&path_in(Down, pol), &map(pol), &verdict(Up), &ctx(1), pol, 0)
}

#[test]
fn failback_immediate_switches() {
    let pol = Policy {
        failback: Failback::Immediate,
        ..policy()
    };
    let u = path_back_up(&pol);
    let groups = [G(50, 1), G(10, 1)];
    let (m, a) = failback_after_check(&u.map, &u, &fb(&groups, 2, 1, true), &pol);
    assert_eq!(
        a,
        vec![
            Action::SwitchGroup(1),
            Action::Log(2, "mpatha: switch to path group #1".into())
        ]
    );
    assert_eq!(m.stat_switch_group, 1);
    // Already on the best group: nothing.
    assert!(
        failback_after_check(&u.map, &u, &fb(&groups, 1, 1, true), &pol)
            .1
            .is_empty()
    );
}

#[test]
fn failback_manual_never_switches() {
    let pol = Policy {
        failback: Failback::Manual,
        ..policy()
    };
    let u = path_back_up(&pol);
    let (m, a) = failback_after_check(&u.map, &u, &fb(&[G(50, 1), G(10, 1)], 2, 1, true), &pol);
    assert!(a.is_empty());
    assert_eq!(m.failback_tick, 0);
}

#[test]
fn failback_followover_only_for_first_path_of_best_group() {
    let pol = Policy {
        failback: Failback::Followover,
        ..policy()
    };
    let u = path_back_up(&pol);
    let groups = [G(50, 1), G(10, 1)];
    assert_eq!(
        failback_after_check(&u.map, &u, &fb(&groups, 2, 1, true), &pol).1[0],
        Action::SwitchGroup(1)
    );
    // Another path of that group was already up: the admin chose the group.
    assert!(
        failback_after_check(&u.map, &u, &fb(&groups, 2, 1, false), &pol)
            .1
            .is_empty()
    );
    // The path is not in the best group.
    assert!(
        failback_after_check(&u.map, &u, &fb(&groups, 2, 2, true), &pol)
            .1
            .is_empty()
    );
    // Unchanged up path (no new checker up): no switch.
    let steady = update_path_state(&path_in(Up, &pol), &map(&pol), &verdict(Up), &ctx(1), &pol, 0);
    assert!(
        failback_after_check(&steady.map, &steady, &fb(&groups, 2, 1, true), &pol)
            .1
            .is_empty()
    );
}

#[test]
fn failback_deferred_counts_down_with_map_ticks() {
    let pol = Policy {
        failback: Failback::Deferred(10),
        ..policy()
    };
    let u = path_back_up(&pol);
    let groups = [G(50, 1), G(10, 1)];
    let (m, a) = failback_after_check(&u.map, &u, &fb(&groups, 2, 1, true), &pol);
    assert!(a.is_empty());
    assert_eq!(m.failback_tick, 11);
    // A steady check does not restart the countdown.
    let steady = update_path_state(&u.path, &m, &verdict(Up), &ctx(1), &pol, 5);
    let (m, _) = map_tick(&m, 4, &groups, 2, &pol);
    let (m, _) = failback_after_check(&m, &steady, &fb(&groups, 2, 1, true), &pol);
    assert_eq!(m.failback_tick, 7);
    let (m, a) = map_tick(&m, 6, &groups, 2, &pol);
    assert!(a.is_empty());
    let (m, a) = map_tick(&m, 1, &groups, 2, &pol);
    assert_eq!(
        a,
        vec![
            Action::SwitchGroup(1),
            Action::Log(2, "mpatha: switch to path group #1".into())
        ]
    );
    assert_eq!(m.failback_tick, 0);
    // A path failing cancels a scheduled failback.
    let mut m2 = m.clone();
    m2.failback_tick = 5;
    let d = update_path_state(&u.path, &m2, &verdict(Down), &ctx(1), &pol, 9);
    assert_eq!(d.map.failback_tick, 0);
}

#[test]
fn prio_regroup_reloads() {
    let pol = Policy {
        failback: Failback::Immediate,
        ..policy()
    };
    let u = path_back_up(&pol);
    let groups = [G(50, 1)];
    let input = FailbackInput {
        prio_regroup: true,
        ..fb(&groups, 1, 1, true)
    };
    assert_eq!(
        failback_after_check(&u.map, &u, &input, &pol).1,
        vec![
            Action::Log(2, "mpatha: path priorities changed. reloading".into()),
            Action::ReloadMap
        ]
    );
}

#[test]
fn ghost_delay_expires_or_ends_on_first_up_path() {
    let pol = Policy {
        ghost_delay: 3,
        ..policy()
    };
    let m = start_ghost_delay(&map(&pol), &pol);
    let (m1, a) = map_tick(&m, 2, &[], 1, &pol);
    assert!(a.is_empty());
    let (_, a) = map_tick(&m1, 1, &[], 1, &pol);
    assert_eq!(
        a,
        vec![
            Action::Log(0, "mpatha: timed out waiting for active path".into()),
            Action::ReloadMap
        ]
    );
    let u = update_path_state(&path_in(Ghost, &pol), &m1, &verdict(Up), &ctx(1), &pol, 0);
    assert!(u.actions.contains(&Action::ReloadMap));
    assert_eq!(u.map.ghost_delay_tick, 0);
}

// ---- rendering ----

#[test]
fn chk_state_texts() {
    let got: Vec<&str> = PathState::ALL.iter().map(|s| chk_state_text(*s)).collect();
    assert_eq!(
        got,
        vec![
            "undef",
            "undef",
            "faulty",
            "ready",
            "shaky",
            "ghost",
            "i/o pending",
            "i/o timeout",
            "undef",
            "delayed",
            "disconnected"
        ]
    );
    let names: Vec<&str> = PathState::ALL.iter().map(|s| s.name()).collect();
    assert_eq!(
        names.join(" "),
        "wild unchecked down up shaky ghost pending timeout removed delayed disconnected"
    );
}

// ---- invariants over random verdict sequences ----

mod props {
    use super::*;
    use proptest::prelude::*;

    /// What checkers report: every state but `Delayed`, which only the daemon
    /// sets (the exhaustive table above covers a `Delayed` verdict too).
    fn any_verdict() -> impl Strategy<Value = PathState> {
        prop::sample::select(
            PathState::ALL
                .iter()
                .copied()
                .filter(|s| *s != Delayed)
                .collect::<Vec<_>>(),
        )
    }

    fn any_policy() -> impl Strategy<Value = Policy> {
        (0usize..4, 1u32..4, prop::bool::ANY).prop_map(|(which, n, pathgroups)| {
            let base = Policy {
                no_path_retry: NoPathRetry::Retries(n),
                marginal_pathgroups: if pathgroups {
                    MarginalPathgroups::On
                } else {
                    MarginalPathgroups::Off
                },
                ..policy()
            };
            match which {
                0 => base,
                1 => Policy {
                    san_path_err_threshold: n,
                    san_path_err_forget_rate: 2,
                    san_path_err_recovery_time: 10,
                    ..base
                },
                2 => Policy {
                    delay_watch_checks: n,
                    delay_wait_checks: n,
                    ..base
                },
                _ => Policy {
                    marginal_path_enabled: true,
                    ..base
                },
            }
        })
    }

    proptest! {
        #[test]
        fn state_machine_invariants(
            pol in any_policy(),
            steps in prop::collection::vec((any_verdict(), 0usize..3, prop::bool::ANY), 1..60),
        ) {
            let mut p = path_in(Up, &pol);
            let mut m = map(&pol);
            let mut now = 0u64;
            let holds_possible = effective_san_path_err(&pol).enabled() || pol.marginal_path_enabled;
            for (v, others, hold) in steps {
                now += 5;
                let c = MapContext { other_active_paths: others, marginal_hold: hold };
                let before = p.clone();
                let u = update_path_state(&p, &m, &verdict(v), &c, &pol, now);
                let n = if v == Removed { Down } else { v };
                prop_assert!(u.path.checkint >= pol.polling_interval && u.path.checkint <= pol.max_polling_interval);
                prop_assert!(u.path.tick >= 1 && u.path.tick <= u.path.checkint.max(1));
                if !holds_possible {
                    prop_assert_ne!(u.path.state, Delayed);
                }
                for msg in dm_messages(&u.actions) {
                    prop_assert!(msg == "fail_path 8:16" || msg == "reinstate_path 8:16", "{}", msg);
                }
                let bad = matches!(n, Down | Shaky | Timeout | Disconnected | Delayed);
                if bad && before.state != Delayed {
                    prop_assert_eq!(u.path.dm_state, DmState::Failed);
                    prop_assert_eq!(u.path.state, n);
                }
                if n.is_usable() && u.path.state == n {
                    // Usable and not held: DM carries IO on it.
                    prop_assert_eq!(u.path.dm_state, DmState::Active);
                }
                if let NoPathRetry::Retries(r) = m.no_path_retry {
                    prop_assert!(u.map.retry_tick <= r * pol.polling_interval + 1);
                }
                // A hold is never applied while the map has no other active path.
                if u.path.state == Delayed && before.state != Delayed && !bad {
                    prop_assert!(others > 0);
                }
                p = u.path;
                let (m2, _) = map_tick(&u.map, 5, &[], 1, &pol);
                m = m2;
            }
        }
    }
}

#[test]
fn the_tick_changes_nothing_unless_a_countdown_runs() {
    // The owner's 1 s tick skips every map not counting down: that is only right if
    // map_tick changes nothing for them, whatever the policy and the groups.
    let groups = [G(10, 1), G(50, 1)];
    for pol in [
        Policy {
            failback: Failback::Deferred(10),
            no_path_retry: NoPathRetry::Retries(2),
            ghost_delay: 3,
            ..policy()
        },
        Policy {
            failback: Failback::Immediate,
            no_path_retry: NoPathRetry::Queue,
            ..policy()
        },
    ] {
        let m = MapRecord::new("mpatha", &pol, true);
        assert!(!m.counting_down());
        assert_eq!(map_tick(&m, 1, &groups, 1, &pol), (m.clone(), vec![]));
    }
    let pol = policy();
    let base = map(&pol);
    for set in [
        |m: &mut MapRecord| m.retry_tick = 1,
        |m: &mut MapRecord| m.failback_tick = 1,
        |m: &mut MapRecord| m.ghost_delay_tick = 1,
    ] {
        let mut m = base.clone();
        set(&mut m);
        assert!(m.counting_down());
    }
}
