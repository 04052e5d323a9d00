//! Shared driver of the `fuzz_*` targets: proptest at scale, in batches.
//!
//! Environment:
//! - `FUZZ_CASES`: cases per batch (default 2000, so plain `cargo test` stays fast; a slow
//!   target passes its own default to [`run_cases`]);
//! - `FUZZ_SECONDS`: keep running fresh batches until this many seconds have passed;
//! - `FUZZ_SEED`: run exactly one batch from this seed (reproduces a reported failure);
//! - `FUZZ_HANG_SECONDS`: a single case running longer than this is reported as a hang
//!   and aborts the process (default 10).
//!
//! Each batch gets its own seed, printed when it fails, so every finding can be replayed.
//! Plain `cargo test` (neither `FUZZ_SECONDS` nor `FUZZ_SEED`) runs one batch from a seed
//! fixed per target: `make test` is the same regression set in every CI run, and fresh
//! seeds explore under `make fuzz` (a finding there becomes a test of its own).

#![allow(dead_code)] // each target uses a different part of this module

use std::fmt::Debug;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestError, TestRng, TestRunner};

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    match v.trim().parse() {
        Ok(n) => Some(n),
        Err(_) => panic!("{name}={v:?} is not a number"),
    }
}

/// Files of `tests/corpus/<target>/`, sorted by name, as bytes.
pub fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus").join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{}: empty seed corpus", dir.display());
    files
        .into_iter()
        .map(|p| {
            let b = std::fs::read(&p).unwrap();
            (p, b)
        })
        .collect()
}

/// One edit of a seed input.
#[derive(Debug, Clone)]
pub enum Mutation {
    /// Replace the byte at (position mod length).
    Set(usize, u8),
    /// Flip one bit.
    Flip(usize, u8),
    Insert(usize, u8),
    /// Remove up to `n` bytes.
    Delete(usize, usize),
    /// Copy a range of the input to another place (repeats structure).
    Duplicate(usize, usize, usize),
    /// Insert a dictionary word.
    Splice(usize, usize),
    Truncate(usize),
    /// Swap two ranges' order by rotating a slice.
    Rotate(usize, usize, usize),
}

pub fn mutation() -> impl Strategy<Value = Mutation> {
    let p = any::<usize>();
    prop_oneof![
        3 => (p, any::<u8>()).prop_map(|(a, b)| Mutation::Set(a, b)),
        2 => (p, 0u8..8).prop_map(|(a, b)| Mutation::Flip(a, b)),
        2 => (p, any::<u8>()).prop_map(|(a, b)| Mutation::Insert(a, b)),
        3 => (p, 1usize..16).prop_map(|(a, n)| Mutation::Delete(a, n)),
        2 => (p, 1usize..32, p).prop_map(|(a, n, b)| Mutation::Duplicate(a, n, b)),
        4 => (p, p).prop_map(|(a, w)| Mutation::Splice(a, w)),
        1 => p.prop_map(Mutation::Truncate),
        1 => (p, 1usize..64, p).prop_map(|(a, n, k)| Mutation::Rotate(a, n, k)),
    ]
}

/// Applies `edits` to a copy of `seed`; `dict` feeds `Splice`.
pub fn mutate(seed: &[u8], edits: &[Mutation], dict: &[&[u8]]) -> Vec<u8> {
    let mut b = seed.to_vec();
    for e in edits {
        let len = b.len();
        // positions are taken modulo the current length (+1 where the end is a valid place)
        let at = |p: usize| if len == 0 { 0 } else { p % len };
        let at_end = |p: usize| p % (len + 1);
        match *e {
            Mutation::Set(p, v) if len > 0 => b[at(p)] = v,
            Mutation::Flip(p, bit) if len > 0 => b[at(p)] ^= 1 << bit,
            Mutation::Insert(p, v) => b.insert(at_end(p), v),
            Mutation::Delete(p, n) if len > 0 => {
                let s = at(p);
                b.drain(s..(s + n).min(len));
            }
            Mutation::Duplicate(p, n, to) if len > 0 => {
                let s = at(p);
                let piece = b[s..(s + n).min(len)].to_vec();
                let to = at_end(to);
                b.splice(to..to, piece);
            }
            Mutation::Splice(p, w) if !dict.is_empty() => {
                let to = at_end(p);
                b.splice(to..to, dict[w % dict.len()].iter().copied());
            }
            Mutation::Truncate(p) => b.truncate(at_end(p)),
            Mutation::Rotate(p, n, k) if len > 0 => {
                let s = at(p);
                let piece = &mut b[s..(s + n).min(len)];
                let l = piece.len();
                piece.rotate_left(k % l);
            }
            _ => {}
        }
    }
    b
}

/// A corpus entry mutated by up to `max_edits` edits.
pub fn mutated(seeds: Vec<Vec<u8>>, dict: Vec<Vec<u8>>, max_edits: usize) -> impl Strategy<Value = Vec<u8>> {
    let seeds = Arc::new(seeds);
    let dict = Arc::new(dict);
    (0..seeds.len(), proptest::collection::vec(mutation(), 0..=max_edits)).prop_map(move |(i, edits)| {
        let d: Vec<&[u8]> = dict.iter().map(Vec::as_slice).collect();
        mutate(&seeds[i], &edits, &d)
    })
}

/// A sequence of words from `words` joined by separators from `seps`.
pub fn soup(words: Vec<String>, seps: &'static [&'static str], max_len: usize) -> impl Strategy<Value = String> {
    let words = Arc::new(words);
    proptest::collection::vec((any::<prop::sample::Index>(), 0..seps.len()), 0..max_len).prop_map(move |picks| {
        let mut s = String::new();
        for (w, sep) in picks {
            s.push_str(&words[w.index(words.len())]);
            s.push_str(seps[sep]);
        }
        s
    })
}

/// Watches the case in progress and aborts the process on a hang, printing the input.
struct Watchdog {
    started_ms: Arc<AtomicU64>,
    current: Arc<Mutex<Option<Box<dyn Debug + Send>>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

const IDLE: u64 = u64::MAX;

impl Watchdog {
    fn new(target: &'static str, epoch: Instant, limit: Duration) -> Self {
        let started_ms = Arc::new(AtomicU64::new(IDLE));
        let current: Arc<Mutex<Option<Box<dyn Debug + Send>>>> = Arc::new(Mutex::new(None));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, c, st) = (started_ms.clone(), current.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                std::thread::park_timeout(Duration::from_millis(200));
                let at = s.load(Ordering::Relaxed);
                if at == IDLE {
                    continue;
                }
                let now = epoch.elapsed().as_millis() as u64;
                if now.saturating_sub(at) > limit.as_millis() as u64 {
                    let input = c.lock().ok().and_then(|g| g.as_ref().map(|v| format!("{v:?}")));
                    eprintln!(
                        "[{target}] HANG: one case ran longer than {limit:?}; input:\n{}",
                        input.unwrap_or_else(|| "<unknown>".into())
                    );
                    std::process::abort();
                }
            }
        });
        Watchdog {
            started_ms,
            current,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

/// The last panic of the fuzzing thread: where and why.
static LAST_PANIC: Mutex<Option<String>> = Mutex::new(None);

type Hook = Box<dyn Fn(&std::panic::PanicHookInfo<'_>) + Sync + Send + 'static>;

/// Keeps panics of the thread named `target` quiet (shrinking panics hundreds of times)
/// and remembers the last one; other threads report as before.
fn quiet_panics(target: &'static str) -> Arc<Hook> {
    let prev: Arc<Hook> = Arc::new(std::panic::take_hook());
    let chained = prev.clone();
    std::panic::set_hook(Box::new(move |info| {
        if std::thread::current().name() == Some(target) {
            if let Ok(mut g) = LAST_PANIC.lock() {
                *g = Some(info.to_string());
            }
        } else {
            chained(info);
        }
    }));
    prev
}

fn restore_panics(prev: Arc<Hook>) {
    let _ = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| prev(info)));
}

/// Runs `property` on values of `strategy` in batches (see the module doc) and panics
/// with the minimal failing input and the batch seed on the first failure.
pub fn run<S>(target: &'static str, strategy: S, property: impl Fn(&S::Value))
where
    S: Strategy,
    S::Value: Debug + Clone + Send + 'static,
{
    run_cases(target, 2000, strategy, property);
}

/// [`run`] with `default_cases` per batch when `FUZZ_CASES` is not set (a target whose case
/// runs programs keeps plain `cargo test` to a few seconds this way).
pub fn run_cases<S>(target: &'static str, default_cases: u64, strategy: S, property: impl Fn(&S::Value))
where
    S: Strategy,
    S::Value: Debug + Clone + Send + 'static,
{
    run_seeded(target, default_cases, name_seed(target), strategy, property);
}

/// A seed fixed by the target's name (FNV-1a), for plain `cargo test`.
fn name_seed(target: &str) -> u64 {
    target.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// [`run_cases`] with the seed plain `cargo test` (no `FUZZ_SECONDS`, no `FUZZ_SEED`) runs
/// its one batch from, instead of the target's name seed.
pub fn run_seeded<S>(
    target: &'static str,
    default_cases: u64,
    test_seed: u64,
    strategy: S,
    property: impl Fn(&S::Value),
) where
    S: Strategy,
    S::Value: Debug + Clone + Send + 'static,
{
    let cases = env_u64("FUZZ_CASES").unwrap_or(default_cases).max(1) as u32;
    let budget = env_u64("FUZZ_SECONDS").map(Duration::from_secs);
    let fixed_seed = env_u64("FUZZ_SEED").or(budget.is_none().then_some(test_seed));
    let hang = Duration::from_secs(env_u64("FUZZ_HANG_SECONDS").unwrap_or(10));
    let epoch = Instant::now();
    let dog = Watchdog::new(target, epoch, hang);
    let mut seed = fixed_seed.unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
    });
    let mut total = 0u64;
    let mut batches = 0u64;
    let prev_hook = quiet_panics(target);
    loop {
        let mut key = [0u8; 32];
        key[..8].copy_from_slice(&seed.to_le_bytes());
        let config = Config {
            cases,
            failure_persistence: None,
            max_shrink_time: 60_000,
            ..Config::default()
        };
        let mut runner = TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &key));
        let result = runner.run(&strategy, |v| {
            // A copy of the input is kept so that a hang can be reported with it; it is
            // formatted only then (formatting every case would halve the throughput).
            if let Ok(mut g) = dog.current.lock() {
                *g = Some(Box::new(v.clone()));
            }
            dog.started_ms
                .store(epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
            property(&v);
            dog.started_ms.store(IDLE, Ordering::Relaxed);
            Ok(())
        });
        dog.started_ms.store(IDLE, Ordering::Relaxed);
        match result {
            Ok(()) => {}
            Err(TestError::Fail(_, v)) => {
                // Run the minimal input once more so the panic location is its own.
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| property(&v)));
                let why = LAST_PANIC.lock().ok().and_then(|g| g.clone()).unwrap_or_default();
                restore_panics(prev_hook);
                panic!(
                    "[{target}] property failed (replay with FUZZ_SEED={seed} FUZZ_CASES={cases})\n{why}\nminimal input: {v:?}"
                );
            }
            Err(TestError::Abort(why)) => {
                restore_panics(prev_hook);
                panic!("[{target}] aborted: {why}");
            }
        }
        total += u64::from(cases);
        batches += 1;
        seed = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let done = match budget {
            Some(b) if fixed_seed.is_none() => epoch.elapsed() >= b,
            _ => true,
        };
        if done {
            break;
        }
    }
    restore_panics(prev_hook);
    let secs = epoch.elapsed().as_secs_f64();
    println!(
        "[{target}] {total} cases in {batches} batches, {secs:.1} s, {:.0} cases/s",
        total as f64 / secs.max(1e-9)
    );
}
