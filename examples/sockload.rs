//! sockload: a measuring client for the multipathd socket, used by the lab to compare our
//! daemon with Debian's through the same client code (so the client's own start-up cost is
//! not part of what is measured).
//!
//! usage: sockload [--rr PRIO] MODE ...
//!        --rr PRIO: the client runs at SCHED_RR priority PRIO (root), so that a reply's time
//!            is the daemon's and the kernel's, not the client's own wait for a CPU behind a
//!            load of ordinary processes (the lab's reads on every map); refused: exit 2.
//!        sockload latency COUNT CMD [SECONDS]
//!            COUNT round trips one after another, each on a fresh connection as the real
//!            client does, none started after SECONDS (when given: a daemon taking seconds a
//!            reply would otherwise hold a run for hours); prints `n= ok= failed= median_ms=
//!            p90_ms= p99_ms= max_ms= reply_bytes=`, n the round trips made.
//!        sockload load CLIENTS TIMEOUT_MS CMD
//!            CLIENTS connections at once (all connected before any sends), each waits at
//!            most TIMEOUT_MS for its reply; prints `clients= ok= failed= median_ms= max_ms=`
//!            and one line per failure; exits 1 if any client failed.
//!        sockload sample INTERVAL_MS TIMEOUT_MS STOPFILE CMD
//!            one round trip every INTERVAL_MS while STOPFILE exists, each given TIMEOUT_MS;
//!            prints `UPTIME MS ok|failed WAIT_MS` per round trip (UPTIME: when it was sent),
//!            so a scenario sees how long the daemon took at each moment of a fault. WAIT_MS
//!            is how long this client itself waited for a CPU during the round trip (its
//!            run-queue delay from /proc/thread-self/schedstat; `-` where the kernel does not
//!            keep it): a slow round trip with a long wait was the client's, not the daemon's.
//! Both talk to the abstract socket both daemons listen on.

use std::os::unix::net::UnixStream;
use std::process::ExitCode;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use multipathd::cli::client::connect;
use multipathd::cli::protocol::{recv_reply, send_frame};
use multipathd::cli::server::{ABSTRACT_SOCKET, SocketName};

const USAGE: &str = "usage: sockload [--rr PRIO] MODE, MODE one of latency COUNT CMD [SECONDS] \
                     | load CLIENTS TIMEOUT_MS CMD | sample INTERVAL_MS TIMEOUT_MS STOPFILE CMD";

fn open() -> Result<UnixStream, String> {
    connect(&[SocketName::Abstract(ABSTRACT_SOCKET.to_string())]).map_err(|e| format!("connect: {e}"))
}

/// One command on an open connection; the reply's length on success.
fn exchange(s: &mut UnixStream, cmd: &str, timeout: Duration) -> Result<usize, String> {
    let deadline = Instant::now() + timeout;
    send_frame(s, cmd, deadline).map_err(|e| format!("send: {e:?}"))?;
    let reply = recv_reply(s, deadline).map_err(|e| format!("receive: {e:?}"))?;
    if reply.starts_with("fail\n") {
        return Err(format!("daemon replied: {}", reply.trim_end()));
    }
    Ok(reply.len())
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Value at quantile `q` (0..=1) of sorted durations, in ms.
fn quantile(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    millis(sorted[i])
}

fn latency(count: usize, cmd: &str, budget: Option<Duration>) -> ExitCode {
    let mut times = Vec::with_capacity(count);
    let mut failed = 0;
    let mut bytes = 0;
    let start = Instant::now();
    let mut made = 0;
    while made < count && budget.is_none_or(|b| start.elapsed() < b) {
        made += 1;
        let t0 = Instant::now();
        match open().and_then(|mut s| exchange(&mut s, cmd, Duration::from_secs(30))) {
            Ok(n) => {
                times.push(t0.elapsed());
                bytes = n;
            }
            Err(e) => {
                failed += 1;
                eprintln!("sockload: {e}");
            }
        }
    }
    times.sort();
    println!(
        "n={made} ok={} failed={failed} median_ms={:.2} p90_ms={:.2} p99_ms={:.2} max_ms={:.2} reply_bytes={bytes}",
        times.len(),
        quantile(&times, 0.5),
        quantile(&times, 0.9),
        quantile(&times, 0.99),
        quantile(&times, 1.0)
    );
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn load(clients: usize, timeout: Duration, cmd: &str) -> ExitCode {
    let barrier = Arc::new(Barrier::new(clients));
    let workers: Vec<_> = (0..clients)
        .map(|_| {
            let barrier = Arc::clone(&barrier);
            let cmd = cmd.to_string();
            thread::spawn(move || {
                let conn = open();
                // every client is connected (or has failed to) before the first one sends
                barrier.wait();
                let t0 = Instant::now();
                let r = conn.and_then(|mut s| exchange(&mut s, &cmd, timeout));
                (t0.elapsed(), r)
            })
        })
        .collect();
    let mut times = Vec::with_capacity(clients);
    let mut failures = Vec::new();
    for (i, w) in workers.into_iter().enumerate() {
        match w.join() {
            Ok((t, Ok(_))) => times.push(t),
            Ok((t, Err(e))) => failures.push(format!("client {i}: {e} after {:.0} ms", millis(t))),
            Err(_) => failures.push(format!("client {i}: thread panicked")),
        }
    }
    times.sort();
    println!(
        "clients={clients} ok={} failed={} median_ms={:.1} max_ms={:.1}",
        times.len(),
        failures.len(),
        quantile(&times, 0.5),
        quantile(&times, 1.0)
    );
    for f in &failures {
        println!("{f}");
    }
    if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// The calling thread's time spent runnable but not running, in ns (the second field of
/// its schedstat); None without CONFIG_SCHED_INFO.
fn run_queue_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().nth(1)?.parse().ok()
}

fn sample(every: Duration, timeout: Duration, stop: &str, cmd: &str) -> ExitCode {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    while std::path::Path::new(stop).exists() {
        let sent = std::fs::read_to_string("/proc/uptime")
            .ok()
            .and_then(|s| s.split_whitespace().next().map(str::to_string))
            .unwrap_or_default();
        // The two run-queue reads fall inside the timed interval, so a preemption during
        // one counts in both numbers and the wait never exceeds the round trip.
        let t0 = Instant::now();
        let w0 = run_queue_ns();
        let r = open().and_then(|mut s| exchange(&mut s, cmd, timeout));
        let w1 = run_queue_ns();
        let took = t0.elapsed();
        let verdict = if r.is_ok() { "ok" } else { "failed" };
        let wait = match (w0, w1) {
            (Some(a), Some(b)) => format!("{:.0}", b.saturating_sub(a) as f64 / 1e6),
            _ => "-".to_string(),
        };
        // (flushed per line: the scenario reads the file while this runs)
        if writeln!(out, "{sent} {:.0} {verdict} {wait}", millis(took))
            .and_then(|()| out.flush())
            .is_err()
        {
            return ExitCode::FAILURE;
        }
        thread::sleep(every);
    }
    ExitCode::SUCCESS
}

fn usage() -> ExitCode {
    eprintln!("{USAGE}");
    ExitCode::from(2)
}

/// The whole process (threads started later inherit it) at SCHED_RR priority `prio`.
fn set_round_robin(prio: i32) -> std::io::Result<()> {
    let param = libc::sched_param { sched_priority: prio };
    // SAFETY: `param` outlives the call, which only reads it.
    if unsafe { libc::sched_setscheduler(0, libc::SCHED_RR, &param) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let num = |s: &str| s.parse::<usize>().ok().filter(|n| *n > 0);
    if args.first().map(String::as_str) == Some("--rr") {
        let Some(prio) = args.get(1).and_then(|p| p.parse::<i32>().ok()) else {
            return usage();
        };
        if let Err(e) = set_round_robin(prio) {
            eprintln!("sockload: SCHED_RR at priority {prio}: {e}");
            return ExitCode::from(2);
        }
        args.drain(..2);
    }
    match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["latency", count, cmd] => match num(count) {
            Some(n) => latency(n, cmd, None),
            None => usage(),
        },
        ["latency", count, cmd, secs] => match (num(count), num(secs)) {
            (Some(n), Some(s)) => latency(n, cmd, Some(Duration::from_secs(s as u64))),
            _ => usage(),
        },
        ["load", clients, ms, cmd] => match (num(clients), num(ms)) {
            (Some(n), Some(ms)) => load(n, Duration::from_millis(ms as u64), cmd),
            _ => usage(),
        },
        ["sample", every, ms, stop, cmd] => match (num(every), num(ms)) {
            (Some(e), Some(ms)) => sample(
                Duration::from_millis(e as u64),
                Duration::from_millis(ms as u64),
                stop,
                cmd,
            ),
            _ => usage(),
        },
        _ => usage(),
    }
}
