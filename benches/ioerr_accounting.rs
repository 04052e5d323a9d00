//! The marginal-path sampler's bookkeeping per tested path, on the scripted fake
//! engine so that no device or kernel time is in the numbers: 32 paths under test,
//! each with its 32 reads completing in one 100 ms pass (1 in 8 failing with EIO).
//!
//! "account" is the sampler's own accounting of the 1,024 reaped completions;
//! "cycle" is the whole pass the io-err-stat thread makes (reap, account, expire,
//! finish, refill all 32 x 32 slots), fake engine included.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use multipathd::marginal::engine::fake::{FakeEngine, FakeRead};
use multipathd::marginal::engine::{Completion, IoEngine};
use multipathd::marginal::sampler::{CONCUR_NR_EVENT, RESUBMIT_PERIOD, SampleTime, Sampler, TestSpec};

const PATHS: usize = 32;

/// A sampler with `PATHS` tests just started at `t0` (all slots in flight) and the
/// engine clock moved one resubmit period on, so every read has completed.
fn started(t0: Instant) -> (Sampler, FakeEngine) {
    let mut eng = FakeEngine::new(t0);
    let mut s = Sampler::new();
    for i in 0..PATHS {
        let dev = format!("/dev/sd{i}");
        eng.add_device(
            &dev,
            4096,
            Box::new(|n| {
                if n % 8 == 7 {
                    FakeRead::Err(libc::EIO, Duration::ZERO)
                } else {
                    FakeRead::Ok(Duration::ZERO)
                }
            }),
        );
        let spec = TestSpec {
            path: format!("sd{i}"),
            dev_node: PathBuf::from(dev),
            sample_time: SampleTime::from_config(120),
            latency_bound: Some(Duration::from_millis(500)),
        };
        s.start(&mut eng, spec, t0).unwrap();
    }
    eng.set_now(t0 + RESUBMIT_PERIOD);
    (s, eng)
}

fn bench(c: &mut Criterion) {
    let t0 = Instant::now();
    let now = t0 + RESUBMIT_PERIOD;

    // Check the setup does what the numbers claim: 1,024 completions, 128 of them bad.
    let (mut s, mut eng) = started(t0);
    let mut done = Vec::new();
    eng.reap(Duration::ZERO, &mut done).unwrap();
    assert_eq!(done.len(), PATHS * CONCUR_NR_EVENT);
    s.account(&done, now);
    let errs: u64 = s.progress().iter().map(|r| r.counts.errs).sum();
    assert_eq!(errs, (PATHS * CONCUR_NR_EVENT / 8) as u64);

    let mut g = c.benchmark_group("ioerr_accounting");
    g.throughput(Throughput::Elements(PATHS as u64));
    g.bench_function("account 32 paths x 32 completions", |b| {
        b.iter_batched_ref(
            || {
                let (s, mut eng) = started(t0);
                let mut done: Vec<Completion> = Vec::with_capacity(PATHS * CONCUR_NR_EVENT);
                eng.reap(Duration::ZERO, &mut done).unwrap();
                (s, done)
            },
            |(s, done)| s.account(done, now),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("cycle 32 paths x 32 completions (fake engine)", |b| {
        b.iter_batched_ref(
            || (started(t0), Vec::with_capacity(PATHS * CONCUR_NR_EVENT)),
            |((s, eng), buf)| s.cycle(eng, now, buf).unwrap(),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2));
    targets = bench
}
criterion_main!(benches);
