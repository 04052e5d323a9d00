//! The lab: every scenario in tests/lab/scenarios/*.sh boots a real kernel (qemu, TCG) with
//! dm-multipath and scsi_debug and runs against it (see tests/lab/README.md).  Adding a
//! scenario is adding a .sh file there; this test finds it.  As many VMs run at once as the
//! host has pairs of cores (each VM has two vCPUs; `LAB_VMS` overrides).  `LAB=0 cargo test`
//! skips the lab, loudly.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Condvar, Mutex, OnceLock};
use std::thread;
use std::time::Instant;

/// VMs at once: one per two host cores, since each VM runs two vCPUs under TCG. The
/// scenarios' time bounds were measured with a VM that has its two vCPUs' worth of host
/// CPU; a second VM on a 2-core host halves that (measured: hung_lun and
/// nvme_ana_failover then miss their bounds).
fn max_vms() -> usize {
    static N: OnceLock<usize> = OnceLock::new();
    *N.get_or_init(|| {
        std::env::var("LAB_VMS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| thread::available_parallelism().map_or(1, |n| n.get() / 2))
            .max(1)
    })
}

/// Counting semaphore over the VMs of this test binary (both tests share it).
struct Slots {
    free: Mutex<usize>,
    freed: Condvar,
}

fn slots() -> &'static Slots {
    static SLOTS: OnceLock<Slots> = OnceLock::new();
    SLOTS.get_or_init(|| Slots {
        free: Mutex::new(max_vms()),
        freed: Condvar::new(),
    })
}

struct SlotGuard;

fn take_slot() -> SlotGuard {
    let slots = slots();
    let mut free = slots.free.lock().unwrap();
    while *free == 0 {
        free = slots.freed.wait(free).unwrap();
    }
    *free -= 1;
    SlotGuard
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        let slots = slots();
        *slots.free.lock().unwrap() += 1;
        slots.freed.notify_one();
    }
}

fn lab_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/lab")
}

fn skipped() -> bool {
    if std::env::var("LAB").as_deref() == Ok("0") {
        eprintln!(
            "\n!!!!!!!! LAB=0: the lab VM tests are SKIPPED: nothing was checked against a real kernel !!!!!!!!\n"
        );
        return true;
    }
    false
}

/// Host setup (packages, kernel, initramfs) and the build of our binaries, once per test run.
fn prepare() {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    let result = DONE.get_or_init(|| {
        let setup = Command::new(lab_dir().join("setup.sh"))
            .output()
            .map_err(|e| format!("cannot run setup.sh: {e}"))?;
        if !setup.status.success() {
            return Err(format!(
                "tests/lab/setup.sh failed:\n{}",
                String::from_utf8_lossy(&setup.stderr)
            ));
        }
        // Both profiles: a scenario picks one with a `# lab-profile:` line (run.sh).
        for profile in [&[][..], &["--release"][..]] {
            let build = Command::new(env!("CARGO"))
                .args(["build", "--quiet", "--bins", "--examples"])
                .args(profile)
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .output()
                .map_err(|e| format!("cannot run cargo build: {e}"))?;
            if !build.status.success() {
                return Err(format!(
                    "cargo build --bins --examples {}failed:\n{}",
                    profile.join(" "),
                    String::from_utf8_lossy(&build.stderr)
                ));
            }
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("lab preparation failed: {e}");
    }
}

struct Run {
    name: String,
    code: Option<i32>,
    seconds: f64,
    /// run.sh's summary: verdict, steps, and for a failure the end of the scenario output.
    output: String,
}

/// Boots one VM for the scenario script (waiting for a free VM slot first).
fn run_scenario(script: &Path) -> Run {
    let name = script.file_stem().unwrap().to_string_lossy().into_owned();
    let _slot = take_slot();
    let start = Instant::now();
    let out = Command::new("bash")
        .arg("-c")
        .arg("exec \"$0\" \"$1\" 2>&1")
        .arg(lab_dir().join("run.sh"))
        .arg(script)
        .env("LAB_NO_BUILD", "1")
        .output()
        .unwrap_or_else(|e| panic!("cannot run tests/lab/run.sh: {e}"));
    Run {
        name,
        code: out.status.code(),
        seconds: start.elapsed().as_secs_f64(),
        output: String::from_utf8_lossy(&out.stdout).into_owned(),
    }
}

fn scenarios() -> Vec<PathBuf> {
    let dir = lab_dir().join("scenarios");
    let mut found: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "sh"))
        .collect();
    found.sort();
    found
}

/// Wall time of the scenario's previous run, if its results are still there.
fn last_seconds(script: &Path) -> f64 {
    let name = script.file_stem().unwrap_or_default();
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/lab/results")
        .join(name)
        .join("seconds");
    std::fs::read_to_string(file)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0.0)
}

#[test]
fn lab_scenarios() {
    if skipped() {
        return;
    }
    prepare();
    let only = std::env::var("LAB_ONLY").ok();
    let selected: Vec<PathBuf> = scenarios()
        .into_iter()
        .filter(|p| only.as_deref().is_none_or(|o| p.file_stem().is_some_and(|s| s == o)))
        .collect();
    assert!(
        !selected.is_empty(),
        "no scenario in tests/lab/scenarios matches LAB_ONLY={only:?}"
    );

    // Longest first (by the last run's time), so the two VM slots finish close together.
    let mut queue: Vec<(f64, &PathBuf)> = selected.iter().map(|p| (last_seconds(p), p)).collect();
    queue.sort_by(|a, b| a.0.total_cmp(&b.0));
    let queue = Mutex::new(queue);
    let start = Instant::now();
    let mut runs: Vec<Run> = thread::scope(|s| {
        let workers: Vec<_> = (0..max_vms())
            .map(|_| {
                s.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        // The guard must end here: a `while let` scrutinee's temporary
                        // would hold the queue through the whole scenario run.
                        let next = queue.lock().unwrap().pop();
                        let Some((_, script)) = next else { break };
                        done.push(run_scenario(script));
                    }
                    done
                })
            })
            .collect();
        workers.into_iter().flat_map(|w| w.join().unwrap()).collect()
    });
    runs.sort_by(|a, b| a.name.cmp(&b.name));

    let mut summary = String::from("lab scenarios:\n");
    for r in &runs {
        let verdict = match r.code {
            Some(0) if r.output.contains(": SKIPPED: ") => "SKIPPED".to_string(),
            Some(0) => "pass".to_string(),
            Some(124) => "TIMEOUT".to_string(),
            Some(c) => format!("FAIL (exit {c})"),
            None => "FAIL (killed)".to_string(),
        };
        summary += &format!("  {:<24} {:<14} {:6.1} s\n", r.name, verdict, r.seconds);
        // The failing expectation beside its row: CI's excerpt of a long log may keep only
        // the summary.
        if let Some(why) = r.output.lines().find(|l| l.starts_with("FAIL [")) {
            summary += &format!("      {}\n", why.chars().take(300).collect::<String>());
        }
    }
    summary += &format!(
        "  total wall time {:.1} s with at most {} VMs at once\n",
        start.elapsed().as_secs_f64(),
        max_vms()
    );
    println!("{summary}");
    for r in runs
        .iter()
        .filter(|r| r.code == Some(0) && r.output.contains(": SKIPPED: "))
    {
        eprintln!(
            "\n!!!!!!!! lab scenario {} was SKIPPED (not failed, not checked): {} !!!!!!!!\n",
            r.name,
            r.output.lines().find(|l| l.contains(": SKIPPED: ")).unwrap_or_default()
        );
    }

    let failed: Vec<&Run> = runs.iter().filter(|r| r.code != Some(0)).collect();
    if !failed.is_empty() {
        let logs: Vec<String> = failed
            .iter()
            .map(|r| format!("\n######## {} ########\n{}", r.name, r.output))
            .collect();
        panic!(
            "{} of {} lab scenarios failed\n{summary}{}",
            failed.len(),
            runs.len(),
            logs.concat()
        );
    }
}

/// The harness must make a wrong expectation fail, and say where and what was wrong.
#[test]
fn lab_selftest_broken_scenario_fails_readably() {
    if skipped() {
        return;
    }
    prepare();
    let run = run_scenario(&lab_dir().join("selftest/broken_on_purpose.sh"));
    let log = &run.output;
    assert_eq!(
        run.code,
        Some(1),
        "broken_on_purpose.sh must fail with exit status 1; output:\n{log}"
    );
    for needle in [
        "==== lab: broken_on_purpose: FAIL (exit 1)",
        "FAIL [",
        "in step \"count the paths (wrong on purpose)\": sd device count: expected '3', got '2'",
        "### ",
        "] two scsi_debug paths",
    ] {
        assert!(
            log.contains(needle),
            "the failure report lacks {needle:?}; output:\n{log}"
        );
    }
    assert!(
        !log.contains("not reached"),
        "the scenario went on after a failed expectation:\n{log}"
    );
}
