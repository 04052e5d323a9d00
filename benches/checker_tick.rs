//! The checker loop's bookkeeping for 4,096 paths: which paths are due on a tick
//! (`Scheduler::take_due` plus rescheduling each), and the path state machine
//! (`update_path_state`) that every finished check runs through.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use multipathd::checkers::scheduler::{PathId, Scheduler};
use multipathd::checkers::state::{
    DmState, MapContext, MapRecord, PathRecord, PathState, Policy, Verdict, update_path_state,
};
use multipathd::config::propsel::NoPathRetry;

const PATHS: u64 = 4096;
const INTERVAL: u32 = 5;

/// All paths spread over one polling interval, as after startup.
fn spread_scheduler(now: Instant) -> Scheduler {
    let mut s = Scheduler::new();
    let ids: Vec<PathId> = (0..PATHS).collect();
    s.spread(&ids, now, Duration::from_secs(u64::from(INTERVAL)));
    s
}

fn scheduler(c: &mut Criterion) {
    let mut g = c.benchmark_group("scheduler");

    // Steady state: each 1 s tick takes the ~1/5 of the paths that are due and
    // schedules each again one interval later. The clock is a value, so time moves
    // one second per iteration without sleeping.
    let t0 = Instant::now();
    let mut s = spread_scheduler(t0);
    let mut now = t0;
    g.throughput(Throughput::Elements(PATHS / u64::from(INTERVAL)));
    g.bench_function("tick 4096 paths: take_due + reschedule", |b| {
        b.iter(|| {
            now += Duration::from_secs(1);
            let due = s.take_due(now, usize::MAX);
            for &id in &due {
                s.schedule_in(id, now, INTERVAL);
            }
            due.len()
        })
    });
    assert_eq!(s.len(), PATHS as usize);

    // A tick with nothing due must not depend on the number of paths.
    let mut idle = spread_scheduler(t0 + Duration::from_secs(3600));
    g.throughput(Throughput::Elements(1));
    g.bench_function("idle tick 4096 paths: take_due, none due", |b| {
        b.iter(|| {
            let due = idle.take_due(black_box(t0), usize::MAX);
            assert!(due.is_empty());
            idle.next_deadline()
        })
    });

    // Reconfigure or a polling_interval change moves every path: 4,096 reschedules
    // leave stale heap entries behind until compaction.
    g.throughput(Throughput::Elements(PATHS));
    g.bench_function("reschedule all 4096 paths", |b| {
        b.iter_batched_ref(
            || spread_scheduler(t0),
            |s| {
                for id in 0..PATHS {
                    s.schedule_in(id, t0, 7 + (id % 13) as u32);
                }
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

/// One path of a two-path map, in the state a check finds it in.
struct Case {
    path: PathRecord,
    map: MapRecord,
    verdict: Verdict,
    ctx: MapContext,
}

fn record(i: u64, state: PathState, dm: DmState, checkint: u32, policy: &Policy) -> PathRecord {
    let mut p = PathRecord::new(&format!("sd{i}"), &format!("8:{}", i * 16), "tur", policy);
    p.state = state;
    p.chkr_state = state;
    p.dm_state = dm;
    p.checkint = checkint;
    p
}

fn state_machine(c: &mut Criterion) {
    let policy = Policy {
        no_path_retry: NoPathRetry::Retries(12),
        max_polling_interval: 20,
        ..Policy::default()
    };
    let map = MapRecord::new("mpatha", &policy, true);
    let ctx = MapContext {
        other_active_paths: 1,
        marginal_hold: false,
    };

    // The common case: an up path checked up again at the longest interval.
    let steady: Vec<Case> = (0..PATHS)
        .map(|i| Case {
            path: record(i, PathState::Up, DmState::Active, 20, &policy),
            map: map.clone(),
            verdict: Verdict::new(PathState::Up, ""),
            ctx,
        })
        .collect();
    // Flapping: half the paths go down (fail_path message, queue-mode bookkeeping,
    // log lines), the other half come back (reinstate_path, enable group).
    let flapping: Vec<Case> = (0..PATHS)
        .map(|i| {
            let (was, dm, now) = if i % 2 == 0 {
                (PathState::Up, DmState::Active, PathState::Down)
            } else {
                (PathState::Down, DmState::Failed, PathState::Up)
            };
            let msg = if now == PathState::Down {
                " reports path is down"
            } else {
                " reports path is up"
            };
            Case {
                path: record(i, was, dm, 5, &policy),
                map: map.clone(),
                verdict: Verdict::new(now, msg),
                ctx,
            }
        })
        .collect();
    let fails = update_path_state(
        &flapping[0].path,
        &flapping[0].map,
        &flapping[0].verdict,
        &ctx,
        &policy,
        100,
    );
    assert_eq!(fails.path.dm_state, DmState::Failed);
    let comes_back = update_path_state(
        &flapping[1].path,
        &flapping[1].map,
        &flapping[1].verdict,
        &ctx,
        &policy,
        100,
    );
    assert_eq!(comes_back.path.dm_state, DmState::Active);

    let mut g = c.benchmark_group("update_path_state");
    g.throughput(Throughput::Elements(PATHS));
    for (name, cases) in [
        ("4096 paths, steady up", &steady),
        ("4096 paths, flapping up/down", &flapping),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut actions = 0;
                for k in cases.iter() {
                    let upd = update_path_state(&k.path, &k.map, black_box(&k.verdict), &k.ctx, &policy, 100);
                    actions += upd.actions.len();
                }
                actions
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2));
    targets = scheduler, state_machine
}
criterion_main!(benches);
