//! dmctl: a small device-mapper tool over multipathd's own ioctl layer, so lab
//! scenarios can compare what it does and reads with `dmsetup` on a real kernel.
//!
//! usage: dmctl version | list | info NAME | create NAME UUID TABLE | reload NAME TABLE
//!        | table NAME | status NAME | check NAME | message NAME MSG...
//!        | suspend [--noflush] NAME | resume NAME | rename NAME NEW | remove NAME
//!        | event NAME MSG...
//! TABLE is one target line as for `dmsetup create --table`: `0 32768 multipath ...`.
//! Create, reload, resume, rename and remove tell udev what the daemon tells it for a map
//! with usable paths and no skip_kpartx (`udev_cookie::op_flags`), and wait for udev
//! while it runs. Create and reload suspend as the daemon does (queued IO kept, no
//! filesystem freeze); suspend and resume as dmsetup's do.

use std::process::ExitCode;

use multipathd::dm::udev_cookie::op_flags;
use multipathd::dm::{DmBackend, DmIoctl, MapUdev, MultipathStatus, MultipathTable, Suspend, TargetLine, UdevOp};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

const USAGE: &str = "usage: dmctl version | list | info NAME | create NAME UUID TABLE | reload NAME TABLE
       | table NAME | status NAME | check NAME | message NAME MSG... | suspend [--noflush] NAME
       | resume NAME | rename NAME NEW | remove NAME | event NAME MSG...";

fn line(t: &TargetLine) -> String {
    // Same shape as dmsetup: the kernel's params verbatim (including a trailing space).
    format!("{} {} {} {}", t.start, t.length, t.target, t.params)
}

fn plain(op: UdevOp) -> multipathd::dm::UdevFlags {
    op_flags(op, MapUdev::default())
}

fn parse_table(text: &str) -> Result<TargetLine, String> {
    TargetLine::parse(text).map_err(|e| format!("table {text:?}: {e}"))
}

/// Parses the live table and status with our parsers and checks that formatting
/// them again reproduces the kernel's text.
fn check(dm: &DmIoctl, name: &str) -> Result<(), String> {
    for (what, lines) in [("table", dm.table(name)), ("status", dm.status(name))] {
        let lines = lines.map_err(|e| e.to_string())?;
        let [l] = lines.as_slice() else {
            return Err(format!("{what}: expected one target, got {}", lines.len()));
        };
        let kernel = l.params.trim_end();
        let ours = if what == "table" {
            MultipathTable::parse(kernel)
                .map_err(|e| format!("{what}: {e}"))?
                .format()
                .map_err(|e| e.to_string())?
        } else {
            let st = MultipathStatus::parse(kernel).map_err(|e| format!("{what}: {e}"))?;
            for (n, g) in st.groups.iter().enumerate() {
                for p in &g.paths {
                    println!(
                        "group {} {} path {} {} fail_count={}",
                        n + 1,
                        g.state.as_char(),
                        p.dev,
                        if p.active { "active" } else { "failed" },
                        p.fail_count
                    );
                }
            }
            st.format()
        };
        if ours != kernel {
            return Err(format!("{what}: kernel {kernel:?}, ours {ours:?}"));
        }
        println!("{what} parsed and re-formatted identically");
    }
    Ok(())
}

/// Arms DM event polling, sends a message, and reports whether the control node
/// became readable and the map's event number moved.
fn event(dm: &DmIoctl, name: &str, msg: &str) -> Result<(), String> {
    let event_nr = |dm: &DmIoctl| -> Result<u32, String> {
        dm.list()
            .map_err(|e| e.to_string())?
            .into_iter()
            .find(|d| d.name == name)
            .and_then(|d| d.event_nr)
            .ok_or_else(|| format!("{name}: not listed or no event number"))
    };
    let before = event_nr(dm)?;
    dm.arm_poll().map_err(|e| e.to_string())?;
    dm.message(name, msg).map_err(|e| e.to_string())?;
    let mut fds = [PollFd::new(dm.control_fd(), PollFlags::POLLIN)];
    let ready = poll(&mut fds, PollTimeout::from(5000u16)).map_err(|e| format!("poll: {e}"))?;
    let after = event_nr(dm)?;
    println!(
        "event_nr {before} -> {after}, control fd {}",
        if ready > 0 { "readable" } else { "not readable" }
    );
    if ready > 0 && after > before {
        Ok(())
    } else {
        Err("no DM event seen".into())
    }
}

fn run(args: &[String]) -> Result<(), String> {
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let dm = DmIoctl::open().map_err(|e| e.to_string())?;
    let e = |x: multipathd::dm::DmError| x.to_string();
    match a.as_slice() {
        ["version"] => {
            let v = dm.version().map_err(e)?;
            println!("{}.{}.{}", v[0], v[1], v[2]);
        }
        ["list"] => {
            for d in dm.list().map_err(e)? {
                let ev = d.event_nr.map_or("-".to_owned(), |n| n.to_string());
                println!("{} {}:{} event_nr={ev}", d.name, d.major, d.minor);
            }
        }
        ["info", name] => {
            let i = dm.info(name).map_err(e)?;
            println!(
                "name={} uuid={} dev={}:{} open_count={} event_nr={} targets={} suspended={} live={} inactive={}",
                i.name,
                i.uuid,
                i.major,
                i.minor,
                i.open_count,
                i.event_nr,
                i.target_count,
                i.suspended,
                i.live_table,
                i.inactive_table
            );
        }
        ["create", name, uuid, table] => {
            let i = dm
                .create_map(name, uuid, &[parse_table(table)?], MapUdev::default())
                .map_err(e)?;
            println!("created {} {}:{}", i.name, i.major, i.minor);
        }
        ["reload", name, table] => {
            dm.reload(name, &[parse_table(table)?], MapUdev::default(), Suspend::KEEP_IO)
                .map_err(e)?;
        }
        ["table", name] => dm.table(name).map_err(e)?.iter().for_each(|t| println!("{}", line(t))),
        ["status", name] => dm.status(name).map_err(e)?.iter().for_each(|t| println!("{}", line(t))),
        ["check", name] => check(&dm, name)?,
        ["message", name, msg @ ..] if !msg.is_empty() => {
            if let Some(reply) = dm.message(name, &msg.join(" ")).map_err(e)? {
                println!("{reply}");
            }
        }
        ["event", name, msg @ ..] if !msg.is_empty() => event(&dm, name, &msg.join(" "))?,
        ["suspend", "--noflush", name] => {
            let noflush = Suspend {
                noflush: true,
                skip_lockfs: false,
            };
            drop(dm.suspend(name, noflush).map_err(e)?)
        }
        ["suspend", name] => drop(dm.suspend(name, Suspend::default()).map_err(e)?),
        ["resume", name] => drop(dm.resume(name, Suspend::default(), plain(UdevOp::Resume)).map_err(e)?),
        ["rename", name, new] => dm.rename(name, new, plain(UdevOp::Rename)).map_err(e)?,
        ["remove", name] => dm.remove(name, plain(UdevOp::Remove), false).map_err(e)?,
        _ => return Err(USAGE.to_owned()),
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() || args[0] == "--help" {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    }
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("dmctl: {msg}");
            ExitCode::FAILURE
        }
    }
}
