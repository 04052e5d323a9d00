//! The marginal-path state machine, every branch, with a fake clock (Instant + offsets).

use std::time::{Duration, Instant};

use multipathd::marginal::{Action, Event, MarginalConfig, MarginalState, PathGroups, TestState};

fn cfg() -> MarginalConfig {
    MarginalConfig {
        double_failed_time: Some(60),
        err_sample_time: Some(120),
        err_rate_threshold: Some(10),
        err_recheck_gap_time: Some(300),
        pathgroups: PathGroups::Off,
        latency_bound_ms: None,
    }
}

struct Clock(Instant);
impl Clock {
    fn at(&self, s: u64) -> Instant {
        self.0 + Duration::from_secs(s)
    }
}

fn log(level: u8, t: &str) -> Action {
    Action::Log {
        level,
        text: t.to_string(),
    }
}
/// A PATH_FAILED uevent for `path` while `others` other paths of the map are usable.
fn failed(path: &str, others: usize) -> Event {
    Event::PathFailed {
        path: path.into(),
        map: "mpatha".into(),
        other_active_paths: others,
        path_down: false,
    }
}
fn up(path: &str, active: usize) -> Event {
    Event::CheckerSawUp {
        path: path.into(),
        map_active_paths: active,
    }
}
fn finished(path: &str, ios: u64, errs: u64, active: usize) -> Event {
    Event::TestFinished {
        path: path.into(),
        ios,
        errs,
        map_active_paths: active,
    }
}
fn p(s: &str) -> String {
    s.to_string()
}

/// Drives sdb to "held, waiting for the checker" at t=10.
fn held(m: &mut MarginalState, c: &Clock) {
    m.handle(failed("sdb", 2), c.at(0));
    let a = m.handle(failed("sdb", 2), c.at(10));
    assert_eq!(
        a,
        vec![
            Action::HoldReinstate { path: p("sdb") },
            log(2, "io error statistic: sdb: mark as failed"),
            Action::FailPath { path: p("sdb") },
        ]
    );
}

/// Drives sdb to "under test" at t=20.
fn testing(m: &mut MarginalState, c: &Clock) {
    held(m, c);
    let a = m.handle(up("sdb", 2), c.at(20));
    assert_eq!(
        a,
        vec![
            log(4, "io error statistic: sdb: reschedule checking after 300 seconds"),
            Action::EnqueueTest {
                path: p("sdb"),
                sample_time: 120,
                latency_bound_ms: None
            },
            log(2, "sdb: path is now marginal"),
            Action::Delay { path: p("sdb") },
        ]
    );
}

#[test]
fn disabled_feature_ignores_uevents() {
    let c = Clock(Instant::now());
    let mut m = MarginalState::new(MarginalConfig {
        err_recheck_gap_time: None,
        ..cfg()
    });
    assert_eq!(
        m.handle(failed("sdb", 2), c.at(0)),
        vec![log(4, "io error statistic: mpatha: parameter not set"),]
    );
    assert_eq!(m.status("sdb", c.at(0)).map(|s| s.state), Some(TestState::Normal));
    assert!(m.handle(up("sdb", 2), c.at(1)).is_empty());
}

/// A path the checker already failed is held on its second PATH_FAILED without a
/// second "mark as failed" or fail_path: upstream marks only a path not yet down.
#[test]
fn hold_of_a_path_already_down_marks_nothing() {
    let c = Clock(Instant::now());
    let mut m = MarginalState::new(cfg());
    let down = || Event::PathFailed {
        path: p("sdb"),
        map: p("mpatha"),
        other_active_paths: 1,
        path_down: true,
    };
    assert_eq!(
        m.handle(down(), c.at(0)),
        vec![log(5, "io error statistic: sdb: start path flakiness pre-checking")]
    );
    assert_eq!(
        m.handle(down(), c.at(10)),
        vec![Action::HoldReinstate { path: p("sdb") }]
    );
    assert!(m.is_held("sdb"));
}

#[test]
fn last_active_path_is_never_a_candidate() {
    let c = Clock(Instant::now());
    let mut m = MarginalState::new(cfg());
    for t in [0, 1, 2] {
        assert_eq!(m.handle(failed("sdb", 0), c.at(t)), vec![]);
    }
    assert!(!m.is_held("sdb"));
}

#[test]
fn first_failure_starts_prechecking() {
    let c = Clock(Instant::now());
    let mut m = MarginalState::new(cfg());
    assert_eq!(
        m.handle(failed("sdb", 1), c.at(0)),
        vec![log(5, "io error statistic: sdb: start path flakiness pre-checking")]
    );
    assert_eq!(m.status("sdb", c.at(0)).map(|s| s.state), Some(TestState::PreChecking));
    assert!(!m.is_held("sdb"));
}

#[test]
fn second_failure_inside_window_holds_and_fails_the_path() {
    let c = Clock(Instant::now());
    let mut m = MarginalState::new(cfg());
    held(&mut m, &c);
    assert!(m.is_held("sdb"));
    let s = m.status("sdb", c.at(10)).expect("status");
    assert_eq!(
        (s.state, s.marginal, s.next_recheck_in),
        (TestState::Delayed, false, Some(0))
    );
}

#[test]
fn window_boundary_is_inclusive_and_late_failure_restarts() {
    let c = Clock(Instant::now());
    let mut m = MarginalState::new(cfg());
    m.handle(failed("sdb", 2), c.at(0));
    // exactly double_failed_time later still counts
    assert_eq!(m.handle(failed("sdb", 2), c.at(60)).len(), 3);

    let mut m = MarginalState::new(cfg());
    m.handle(failed("sdb", 2), c.at(0));
    assert_eq!(
        m.handle(failed("sdb", 2), c.at(61)),
        vec![log(5, "io error statistic: sdb: restart path flakiness pre-checking")]
    );
    assert!(!m.is_held("sdb"));
    assert!(
        m.handle(failed("sdb", 2), c.at(100))
            .contains(&Action::FailPath { path: p("sdb") })
    );
}

#[test]
fn uevent_on_held_path_is_refused() {
    let c = Clock(Instant::now());
    let mut m = MarginalState::new(cfg());
    held(&mut m, &c);
    assert_eq!(
        m.handle(failed("sdb", 2), c.at(11)),
        vec![log(3, "io error statistic: sdb: reinstate is already disabled"),]
    );
    let mut t = MarginalState::new(cfg());
    testing(&mut t, &c);
    // the same while under test
    assert_eq!(
        t.handle(failed("sdb", 2), c.at(21)),
        vec![log(3, "io error statistic: sdb: reinstate is already disabled"),]
    );
}

#[test]
fn checker_up_enqueues_once_then_keeps_delaying() {
    let c = Clock(Instant::now());
    let mut m = MarginalState::new(cfg());
    testing(&mut m, &c);
    assert_eq!(m.handle(up("sdb", 2), c.at(21)), vec![Action::Delay { path: p("sdb") }]);
    assert_eq!(m.status("sdb", c.at(21)).map(|s| s.state), Some(TestState::Testing));
    m.handle(
        Event::TestProgress {
            path: p("sdb"),
            ios: 320,
            errs: 7,
        },
        c.at(22),
    );
    let s = m.status("sdb", c.at(22)).expect("status");
    assert_eq!((s.ios, s.errs), (320, 7));
}

#[test]
fn good_verdict_releases_and_the_next_checker_run_clears_delayed() {
    let c = Clock(Instant::now());
    let mut m = MarginalState::new(cfg());
    testing(&mut m, &c);
    assert_eq!(
        m.handle(finished("sdb", 1000, 10, 2), c.at(140)),
        vec![
            log(4, "io error statistic: sdb: check end"),
            log(3, "io error statistic: sdb: IO error rate (10.0/1000)"),
            log(3, "io error statistic: sdb: (10/1000) good to enable reinstating"),
            Action::ReleaseReinstate { path: p("sdb") },
        ]
    );
    assert!(!m.is_held("sdb"));
    assert_eq!(
        m.handle(up("sdb", 2), c.at(141)),
        vec![log(2, "sdb: path is no longer marginal")]
    );
    assert!(m.handle(up("sdb", 3), c.at(142)).is_empty());
    let s = m.status("sdb", c.at(142)).expect("status");
    assert_eq!(
        (s.state, s.marginal, s.ios, s.errs),
        (TestState::Normal, false, 1000, 10)
    );
    // and a new pair of failures starts over
    assert_eq!(m.handle(failed("sdb", 2), c.at(200)).len(), 1);
}

#[test]
fn no_reads_means_rate_zero() {
    let c = Clock(Instant::now());
    let mut m = MarginalState::new(cfg());
    testing(&mut m, &c);
    let a = m.handle(finished("sdb", 0, 0, 2), c.at(140));
    assert!(a.contains(&log(3, "io error statistic: sdb: IO error rate (0.0/1000)")));
    assert!(a.contains(&Action::ReleaseReinstate { path: p("sdb") }));
}

#[test]
fn bad_verdict_keeps_failing_and_rechecks_after_the_gap() {
    let c = Clock(Instant::now());
    let mut m = MarginalState::new(cfg());
    testing(&mut m, &c);
    assert_eq!(
        m.handle(finished("sdb", 1000, 11, 2), c.at(140)),
        vec![
            log(4, "io error statistic: sdb: check end"),
            log(3, "io error statistic: sdb: IO error rate (11.0/1000)"),
            log(3, "io error statistic: mpatha: keep failing the dm path sdb"),
            log(3, "io error statistic: mpatha: disable reinstating of sdb"),
        ]
    );
    assert!(m.is_held("sdb"));
    let s = m.status("sdb", c.at(150)).expect("status");
    assert_eq!(
        (s.state, s.marginal, s.next_recheck_in),
        (TestState::Delayed, false, Some(291))
    );
    // inside the gap (and exactly at it): stays delayed, no test
    assert_eq!(
        m.handle(up("sdb", 2), c.at(200)),
        vec![Action::Delay { path: p("sdb") }]
    );
    assert_eq!(
        m.handle(up("sdb", 2), c.at(440)),
        vec![Action::Delay { path: p("sdb") }]
    );
    assert_eq!(m.status("sdb", c.at(440)).and_then(|s| s.next_recheck_in), Some(1));
    assert_eq!(
        m.handle(up("sdb", 2), c.at(441)),
        vec![
            log(4, "io error statistic: sdb: reschedule checking after 300 seconds"),
            Action::EnqueueTest {
                path: p("sdb"),
                sample_time: 120,
                latency_bound_ms: None
            },
            Action::Delay { path: p("sdb") },
        ]
    );
    let s = m.status("sdb", c.at(441)).expect("status");
    assert_eq!((s.state, s.ios, s.errs), (TestState::Testing, 0, 0));
}

#[test]
fn bad_verdict_on_the_only_usable_path_releases_it() {
    let c = Clock(Instant::now());
    let mut m = MarginalState::new(cfg());
    testing(&mut m, &c);
    assert_eq!(
        m.handle(finished("sdb", 100, 50, 0), c.at(140))[2..],
        [
            log(3, "io error statistic: sdb: there is orphan path, enable reinstating"),
            Action::ReleaseReinstate { path: p("sdb") },
        ]
    );
    assert!(!m.is_held("sdb"));
}

#[test]
fn checker_up_with_no_active_path_recovers_early() {
    let c = Clock(Instant::now());
    let mut m = MarginalState::new(cfg());
    held(&mut m, &c);
    assert_eq!(
        m.handle(up("sdb", 0), c.at(11)),
        vec![
            log(2, "io error statistic: sdb: recover path early"),
            Action::ReleaseReinstate { path: p("sdb") }
        ]
    );
    // during a test the test is cancelled too, and "delayed" is cleared with its log line
    let mut t = MarginalState::new(cfg());
    testing(&mut t, &c);
    assert_eq!(
        t.handle(up("sdb", 0), c.at(30)),
        vec![
            log(2, "io error statistic: sdb: recover path early"),
            Action::CancelTest { path: p("sdb") },
            Action::ReleaseReinstate { path: p("sdb") },
            log(2, "sdb: path is no longer marginal"),
        ]
    );
    // the verdict that was already on its way is stale
    assert!(t.handle(finished("sdb", 10, 10, 1), c.at(31)).is_empty());
}

#[test]
fn map_losing_its_last_active_path_releases_its_held_paths_at_once() {
    let c = Clock(Instant::now());
    let mut m = MarginalState::new(cfg());
    testing(&mut m, &c);
    m.handle(
        Event::PathFailed {
            path: p("sdc"),
            map: p("mpathb"),
            other_active_paths: 1,
            path_down: false,
        },
        c.at(0),
    );
    m.handle(
        Event::PathFailed {
            path: p("sdc"),
            map: p("mpathb"),
            other_active_paths: 1,
            path_down: false,
        },
        c.at(1),
    );
    assert!(
        m.handle(
            Event::MapActivePathsChanged {
                map: p("mpatha"),
                active: 1
            },
            c.at(30)
        )
        .is_empty()
    );
    assert_eq!(
        m.handle(
            Event::MapActivePathsChanged {
                map: p("mpatha"),
                active: 0
            },
            c.at(30)
        ),
        vec![
            log(2, "io error statistic: sdb: recover path early"),
            Action::CancelTest { path: p("sdb") },
            Action::ReleaseReinstate { path: p("sdb") },
        ]
    );
    assert!(m.is_held("sdc"));
}

#[test]
fn removed_path_cancels_its_test() {
    let c = Clock(Instant::now());
    let mut m = MarginalState::new(cfg());
    testing(&mut m, &c);
    assert_eq!(
        m.handle(Event::PathRemoved { path: p("sdb") }, c.at(30)),
        vec![Action::CancelTest { path: p("sdb") }]
    );
    assert!(m.status("sdb", c.at(30)).is_none());
    assert_eq!(
        m.handle(finished("sdb", 10, 0, 1), c.at(31)),
        vec![log(4, "io error statistic: path sdb not found")]
    );
    let mut w = MarginalState::new(cfg());
    held(&mut w, &c);
    assert!(w.handle(Event::PathRemoved { path: p("sdb") }, c.at(30)).is_empty());
}

#[test]
fn failed_enqueue_recovers_the_path() {
    let c = Clock(Instant::now());
    let mut m = MarginalState::new(cfg());
    testing(&mut m, &c);
    assert_eq!(
        m.handle(Event::EnqueueFailed { path: p("sdb") }, c.at(21)),
        vec![
            log(3, "io error statistic: sdb: enqueue fails, to recover"),
            Action::ReleaseReinstate { path: p("sdb") }
        ]
    );
    assert!(m.handle(Event::EnqueueFailed { path: p("sdb") }, c.at(22)).is_empty());
}

#[test]
fn marginal_pathgroups_on_reinstates_into_the_marginal_group() {
    let c = Clock(Instant::now());
    let mut m = MarginalState::new(MarginalConfig {
        pathgroups: PathGroups::On,
        ..cfg()
    });
    held(&mut m, &c);
    assert_eq!(
        m.handle(up("sdb", 2), c.at(20)),
        vec![
            log(4, "io error statistic: sdb: reschedule checking after 300 seconds"),
            Action::EnqueueTest {
                path: p("sdb"),
                sample_time: 120,
                latency_bound_ms: None
            },
            log(2, "sdb: path is now marginal"),
            Action::MarkMarginal {
                path: p("sdb"),
                marginal: true
            },
        ]
    );
    assert!(m.handle(up("sdb", 2), c.at(21)).is_empty());
    m.handle(finished("sdb", 1000, 0, 2), c.at(140));
    assert_eq!(
        m.handle(up("sdb", 2), c.at(141)),
        vec![
            log(2, "sdb: path is no longer marginal"),
            Action::MarkMarginal {
                path: p("sdb"),
                marginal: false
            }
        ]
    );
}

#[test]
fn operator_set_and_unset_marginal() {
    let c = Clock(Instant::now());
    let mut m = MarginalState::new(cfg());
    assert_eq!(
        m.handle(
            Event::SetMarginal {
                path: p("sdb"),
                map: p("mpatha"),
                dev_t: p("8:16")
            },
            c.at(0)
        ),
        vec![
            log(2, "mpatha: set marginal path 8:16 (operator)"),
            Action::MarkMarginal {
                path: p("sdb"),
                marginal: true
            }
        ]
    );
    assert!(m.status("sdb", c.at(0)).expect("status").marginal);
    assert_eq!(
        m.handle(
            Event::UnsetMarginal {
                path: p("sdb"),
                map: p("mpatha"),
                dev_t: p("8:16")
            },
            c.at(1)
        ),
        vec![
            log(2, "mpatha: unset marginal path 8:16 (operator)"),
            Action::MarkMarginal {
                path: p("sdb"),
                marginal: false
            }
        ]
    );
    assert!(!m.status("sdb", c.at(1)).expect("status").marginal);
}

#[test]
fn per_map_settings_override_the_defaults() {
    let c = Clock(Instant::now());
    let mut m = MarginalState::new(MarginalConfig::default());
    m.set_map_config(
        "mpatha",
        MarginalConfig {
            err_recheck_gap_time: Some(5),
            latency_bound_ms: Some(250),
            ..cfg()
        },
    );
    held(&mut m, &c);
    let a = m.handle(up("sdb", 2), c.at(20));
    assert_eq!(
        a[0],
        log(4, "io error statistic: sdb: reschedule checking after 5 seconds")
    );
    assert_eq!(
        a[1],
        Action::EnqueueTest {
            path: p("sdb"),
            sample_time: 120,
            latency_bound_ms: Some(250)
        }
    );
    let other = Event::PathFailed {
        path: p("sdz"),
        map: p("mpathz"),
        other_active_paths: 2,
        path_down: false,
    };
    assert_eq!(
        m.handle(other, c.at(0))[0],
        log(4, "io error statistic: mpathz: parameter not set")
    );
    assert_eq!(m.statuses(c.at(20)).len(), 2);
}

#[test]
fn reconfigure_that_disables_the_feature_releases_held_paths() {
    let c = Clock(Instant::now());
    let mut m = MarginalState::new(cfg());
    testing(&mut m, &c);
    m.set_map_config(
        "mpatha",
        MarginalConfig {
            double_failed_time: None,
            ..cfg()
        },
    );
    // As upstream: the next check that finds the path up reinstates it, and the
    // marginal step is skipped without a word.
    assert_eq!(
        m.handle(up("sdb", 2), c.at(30)),
        vec![
            Action::CancelTest { path: p("sdb") },
            Action::ReleaseReinstate { path: p("sdb") },
        ]
    );
    assert!(m.handle(up("sdb", 2), c.at(31)).is_empty());
    assert!(!m.is_held("sdb"));
    // The cancelled test's verdict, if the thread sent it first, is stale.
    assert!(m.handle(finished("sdb", 1000, 500, 2), c.at(140)).is_empty());
}

/// As upstream, a test is judged by the threshold in force when it started (its
/// sample time too: the thread got it with the test); the recheck gap and the next
/// test follow the new configuration.
#[test]
fn a_reconfigure_during_a_test_keeps_the_threshold_the_test_started_with() {
    let c = Clock(Instant::now());
    let mut m = MarginalState::new(cfg());
    testing(&mut m, &c);
    m.set_map_config(
        "mpatha",
        MarginalConfig {
            err_rate_threshold: Some(500),
            err_recheck_gap_time: Some(30),
            ..cfg()
        },
    );
    // 100/1000: above the old threshold (10), below the new one (500)
    assert_eq!(
        m.handle(finished("sdb", 1000, 100, 2), c.at(140)),
        vec![
            log(4, "io error statistic: sdb: check end"),
            log(3, "io error statistic: sdb: IO error rate (100.0/1000)"),
            log(3, "io error statistic: mpatha: keep failing the dm path sdb"),
            log(3, "io error statistic: mpatha: disable reinstating of sdb"),
        ]
    );
    assert_eq!(m.status("sdb", c.at(140)).and_then(|s| s.next_recheck_in), Some(31));
    assert_eq!(
        m.handle(up("sdb", 2), c.at(170)),
        vec![Action::Delay { path: p("sdb") }]
    );
    assert_eq!(
        m.handle(up("sdb", 2), c.at(171))[..2],
        [
            log(4, "io error statistic: sdb: reschedule checking after 30 seconds"),
            Action::EnqueueTest {
                path: p("sdb"),
                sample_time: 120,
                latency_bound_ms: None
            },
        ]
    );
    assert_eq!(
        m.handle(finished("sdb", 1000, 100, 2), c.at(291))[2],
        log(3, "io error statistic: sdb: (100/1000) good to enable reinstating")
    );
    assert!(!m.is_held("sdb"));
}

/// A removed map leaves its paths outside any map: as upstream's verdict on such an
/// orphan, their holds end (tests cancelled), and a late verdict is stale.
#[test]
fn a_removed_map_releases_the_holds_of_its_paths() {
    let c = Clock(Instant::now());
    let mut m = MarginalState::new(cfg());
    testing(&mut m, &c);
    m.handle(failed("sdc", 2), c.at(21));
    m.handle(failed("sdc", 2), c.at(22));
    let other = Event::PathFailed {
        path: p("sdx"),
        map: p("mpathb"),
        other_active_paths: 1,
        path_down: true,
    };
    m.handle(other.clone(), c.at(23));
    m.handle(other, c.at(24));
    assert!(m.is_held("sdx"));
    assert_eq!(
        m.handle(Event::MapRemoved { map: p("mpatha") }, c.at(30)),
        vec![
            log(3, "io error statistic: sdb: there is orphan path, enable reinstating"),
            Action::CancelTest { path: p("sdb") },
            Action::ReleaseReinstate { path: p("sdb") },
            log(3, "io error statistic: sdc: there is orphan path, enable reinstating"),
            Action::ReleaseReinstate { path: p("sdc") },
        ]
    );
    assert!(!m.is_held("sdb") && !m.is_held("sdc"));
    assert!(m.is_held("sdx"), "another map's hold stays");
    assert!(m.handle(finished("sdb", 1000, 500, 0), c.at(140)).is_empty());
}

/// The io-err-stat thread died: every held path is given back (no test to cancel),
/// paths only pre-checking are left as they are.
#[test]
fn a_dead_test_thread_releases_every_hold() {
    let c = Clock(Instant::now());
    let mut m = MarginalState::new(cfg());
    testing(&mut m, &c);
    m.handle(failed("sdc", 2), c.at(21));
    m.handle(failed("sdc", 2), c.at(22));
    m.handle(failed("sdd", 2), c.at(23));
    assert_eq!(
        m.handle(Event::TestsLost, c.at(30)),
        vec![
            log(2, "io error statistic: sdb: test thread gone, enable reinstating"),
            Action::ReleaseReinstate { path: p("sdb") },
            log(2, "io error statistic: sdc: test thread gone, enable reinstating"),
            Action::ReleaseReinstate { path: p("sdc") },
        ]
    );
    assert!(!m.is_held("sdb") && !m.is_held("sdc"));
    assert_eq!(m.status("sdd", c.at(30)).map(|s| s.state), Some(TestState::PreChecking));
    // sdb was shown delayed: the next check that finds it up says so once.
    assert_eq!(
        m.handle(up("sdb", 2), c.at(31)),
        vec![log(2, "sdb: path is no longer marginal")]
    );
}

#[test]
fn test_is_due_while_held_waiting_and_after_the_recheck_gap_for_a_while() {
    let c = Clock(Instant::now());
    let mut m = MarginalState::new(cfg());
    assert!(!m.test_due("sdb", c.at(0)), "unknown path");
    m.handle(failed("sdb", 2), c.at(0));
    assert!(!m.test_due("sdb", c.at(1)), "one failure only pre-checks");
    m.handle(failed("sdb", 2), c.at(10));
    assert!(m.test_due("sdb", c.at(11)), "held, no verdict yet");
    assert!(m.test_due("sdb", c.at(130)), "still inside the prompt-check window");
    assert!(
        !m.test_due("sdb", c.at(131)),
        "a path that stays dead is checked as usual again"
    );
    m.handle(up("sdb", 2), c.at(131));
    assert!(!m.test_due("sdb", c.at(132)), "under test");
    m.handle(finished("sdb", 1000, 11, 2), c.at(251));
    assert!(!m.test_due("sdb", c.at(551)), "inside the 300 s gap");
    assert!(m.test_due("sdb", c.at(552)), "gap over");
    assert!(m.test_due("sdb", c.at(672)), "window after the gap");
    assert!(!m.test_due("sdb", c.at(673)), "window over");
    m.handle(up("sdb", 2), c.at(673));
    m.handle(finished("sdb", 1000, 0, 2), c.at(793));
    assert!(!m.test_due("sdb", c.at(794)), "released after a good verdict");
}
