//! The sysfs attributes the daemon sets on a map's paths when it sets the map up:
//! SCSI transport timeouts (`fast_io_fail_tmo`, `dev_loss_tmo` on the FC remote
//! port, the iSCSI session or the SAS end device), the host's `eh_deadline`, the
//! disk's `max_retries`, and the block queue's `max_sectors_kb`.
//!
//! Planning is pure: selected values and what the caller read of sysfs go in, an
//! ordered list of [`Step`]s (attribute writes and log lines) comes out. The owner
//! carries the steps out ([`apply`]), so the order of writes (which matters for an
//! FC remote port) is decided and tested here.

use std::collections::BTreeSet;
use std::fmt;
use std::io::Write as _;

use crate::config::propsel::{MaxRetries, NoPathRetry, Timeout};
use crate::discovery::{Hcil, SysfsRoot};

/// The kernel's `dev_loss_tmo` limit when `fast_io_fail_tmo` is not set (and
/// multipath's default `dev_loss_tmo` when it is unset).
pub const DEFAULT_DEV_LOSS_TMO: u32 = 600;
/// `dev_loss_tmo infinity`.
pub const MAX_DEV_LOSS_TMO: u32 = u32::MAX;
/// Padding for the checker's timing when `dev_loss_tmo` must outlast
/// `no_path_retry`: one default checker interval.
const RECHECK_PAD_SECS: u64 = 5;

/// One step of a plan, in the order it must be carried out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Write(Write),
    /// A log line at an upstream verbosity level (0 error … 4 debug).
    Log(u8, String),
    /// Timeouts were asked for a path whose protocol cannot take them; logged once
    /// per protocol for the daemon's life.
    Unsupported {
        dev: String,
        protocol: String,
    },
}

/// One sysfs attribute write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    /// The path the write is for; a failed `required` write skips its later writes.
    pub dev: String,
    /// Below `/sys`, e.g. `class/fc_remote_ports/rport-3:0-1/dev_loss_tmo`.
    pub attr: String,
    pub value: String,
    /// Logged with `: <reason>` appended when the write fails.
    pub failed: (u8, String),
    /// Logged instead of `failed` when the kernel answers EBUSY (a blocked FC port).
    pub busy: Option<(u8, String)>,
    /// Logged when the write succeeds.
    pub done: Option<(u8, String)>,
    /// The later writes for the same path depend on this one.
    pub required: bool,
}

impl Write {
    fn new(dev: &str, attr: String, value: String, failed: (u8, String)) -> Write {
        Write {
            dev: dev.to_string(),
            attr,
            value,
            failed,
            busy: None,
            done: None,
            required: false,
        }
    }
}

/// What the caller read of a path's transport device in sysfs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// FC remote port `rport-H:C-N`; `dev_loss_now` is its current `dev_loss_tmo`,
    /// `None` when the port is not in `class/fc_remote_ports`.
    Fc {
        rport: String,
        dev_loss_now: Option<Result<u32, ReadError>>,
    },
    /// iSCSI session `sessionN`; `present`: it is in `class/iscsi_session`.
    Iscsi { session: String, present: bool },
    /// SAS end device; `present`: it is in `class/sas_end_device`.
    Sas { end_device: String, present: bool },
    /// Any other protocol (`scsi:unspec`, `scsi:ata`, NVMe …).
    Other,
}

/// Why an attribute could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadError {
    /// The read failed with this errno.
    Io(i32),
    /// The attribute holds something else than a number.
    Parse(String),
}

/// One path of the map, with its selected settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathTmo {
    pub dev: String,
    /// A SCSI disk (as opposed to NVMe).
    pub scsi: bool,
    /// As `show paths` prints it: `scsi:fcp`, `nvme:tcp` …
    pub protocol: String,
    pub hcil: Hcil,
    pub transport: Transport,
    /// `class/scsi_host/hostN` exists.
    pub host_present: bool,
    pub fast_io_fail: Option<Timeout>,
    pub dev_loss: Option<Timeout>,
    pub eh_deadline: Option<Timeout>,
}

/// The map-wide inputs of the timeout plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapTmo {
    pub alias: String,
    pub no_path_retry: NoPathRetry,
    /// `polling_interval`, seconds.
    pub polling_interval: u32,
    pub max_retries: Option<MaxRetries>,
}

/// `fast_io_fail_tmo` after the map's rules: 0 and off are distinct.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FastIoFail {
    Unset,
    Off,
    Zero,
    Secs(u32),
}

impl FastIoFail {
    fn of(t: Option<Timeout>) -> FastIoFail {
        match t {
            None => FastIoFail::Unset,
            Some(Timeout::Off) => FastIoFail::Off,
            Some(Timeout::Secs(0)) => FastIoFail::Zero,
            Some(Timeout::Secs(n)) => FastIoFail::Secs(n),
        }
    }
    fn text(self) -> String {
        match self {
            FastIoFail::Unset => String::new(),
            FastIoFail::Off => "off".into(),
            FastIoFail::Zero => "0".into(),
            FastIoFail::Secs(n) => n.to_string(),
        }
    }
}

/// `dev_loss_tmo` as a number, 0 meaning unset (as `dev_loss_tmo 0` does).
fn dev_loss_secs(t: Option<Timeout>) -> u32 {
    match t {
        Some(Timeout::Secs(n)) => n,
        _ => 0,
    }
}

fn off_zero_n(t: Timeout) -> String {
    match t {
        Timeout::Off => "off".into(),
        Timeout::Secs(n) => n.to_string(),
    }
}

/// The smallest `dev_loss_tmo` that lets `no_path_retry` run its course before the
/// transport drops the paths; 0 when queueing does not depend on it.
pub fn min_dev_loss(no_path_retry: NoPathRetry, polling_interval: u32) -> u32 {
    match no_path_retry {
        NoPathRetry::Retries(n) => {
            let tmo = u64::from(n) * u64::from(polling_interval);
            let padded = tmo.saturating_add(tmo / 60).saturating_add(RECHECK_PAD_SECS);
            padded.min(u64::from(MAX_DEV_LOSS_TMO)) as u32
        }
        NoPathRetry::Queue => MAX_DEV_LOSS_TMO,
        NoPathRetry::Undef | NoPathRetry::Fail => 0,
    }
}

/// The timeout writes for the paths of one map, in upstream's order: per path the
/// host's `eh_deadline`, the disk's `max_retries`, then the transport's timeouts;
/// the map-wide warnings last.
pub fn plan_timeouts(map: &MapTmo, paths: &[PathTmo]) -> Vec<Step> {
    let min = min_dev_loss(map.no_path_retry, map.polling_interval);
    let mut out = Vec::new();
    let (mut raised, mut fio_off) = (false, false);
    for p in paths {
        let mut dev_loss = dev_loss_secs(p.dev_loss);
        let mut fio = FastIoFail::of(p.fast_io_fail);
        if dev_loss == 0 && fio == FastIoFail::Unset && p.eh_deadline.is_none() && map.max_retries.is_none() {
            continue;
        }
        if !p.scsi {
            out.push(unsupported(p));
            continue;
        }
        if let Some(eh) = p.eh_deadline
            && p.host_present
        {
            let host = format!("host{}", p.hcil.host);
            let value = off_zero_n(eh);
            out.push(Step::Write(Write::new(
                &p.dev,
                format!("class/scsi_host/{host}/eh_deadline"),
                value.clone(),
                (3, format!("{host}: failed to set eh_deadline to {value}")),
            )));
        }
        if let Some(r) = map.max_retries {
            let value = match r {
                MaxRetries::Off => "-1".to_string(),
                MaxRetries::Count(n) => n.to_string(),
            };
            let rel = format!("scsi_disk/{}/max_retries", p.hcil);
            out.push(Step::Write(Write::new(
                &p.dev,
                format!("block/{}/device/{rel}", p.dev),
                value.clone(),
                (3, format!("{}/{rel}: failed to set value to {value}", p.hcil)),
            )));
        }
        if dev_loss == 0 && fio == FastIoFail::Unset {
            continue;
        }
        if matches!(p.transport, Transport::Other) {
            out.push(unsupported(p));
            continue;
        }
        if dev_loss == 0 && min != 0 {
            dev_loss = min;
        } else if dev_loss < min {
            dev_loss = min;
            raised = true;
        }
        if let FastIoFail::Secs(n) = fio
            && dev_loss != 0
            && n >= dev_loss
        {
            fio = FastIoFail::Off;
            fio_off = true;
        }
        match &p.transport {
            Transport::Fc { rport, dev_loss_now } => {
                plan_rport(&mut out, p, map, rport, dev_loss_now.as_ref(), fio, dev_loss)
            }
            Transport::Iscsi { session, present } => plan_session(&mut out, p, session, *present, fio, dev_loss),
            Transport::Sas { end_device, present } => plan_end_device(&mut out, p, end_device, *present, dev_loss),
            Transport::Other => {}
        }
    }
    if raised {
        out.push(Step::Log(
            2,
            format!(
                "{}: Raising dev_loss_tmo to {min} because of no_path_retry setting",
                map.alias
            ),
        ));
    }
    if fio_off {
        out.push(Step::Log(
            3,
            format!(
                "{}: turning off fast_io_fail (not smaller than dev_loss_tmo)",
                map.alias
            ),
        ));
    }
    out
}

fn unsupported(p: &PathTmo) -> Step {
    Step::Unsupported {
        dev: p.dev.clone(),
        protocol: p.protocol.clone(),
    }
}

fn target_log(p: &PathTmo, name: &str) -> Step {
    Step::Log(
        4,
        format!("target{}:{}:{} -> {name}", p.hcil.host, p.hcil.channel, p.hcil.target),
    )
}

/// An FC remote port: the kernel caps `dev_loss_tmo` at 600 s unless
/// `fast_io_fail_tmo` is set, and refuses a `fast_io_fail_tmo` not below the
/// current `dev_loss_tmo`; so `dev_loss_tmo` goes up first when needed, then
/// `fast_io_fail_tmo`, then the final `dev_loss_tmo`.
fn plan_rport(
    out: &mut Vec<Step>,
    p: &PathTmo,
    map: &MapTmo,
    rport: &str,
    now: Option<&Result<u32, ReadError>>,
    fio: FastIoFail,
    mut dev_loss: u32,
) {
    let Some(now) = now else {
        out.push(Step::Log(
            1,
            format!("{}: No fc_remote_port device for '{rport}'", p.dev),
        ));
        return;
    };
    out.push(target_log(p, rport));
    let now = match now {
        Ok(n) => *n,
        Err(ReadError::Io(errno)) => {
            out.push(Step::Log(
                0,
                format!("{rport}: failed to read dev_loss_tmo value, error {errno}"),
            ));
            return;
        }
        Err(ReadError::Parse(text)) => {
            out.push(Step::Log(
                0,
                format!("{rport}: Cannot parse dev_loss_tmo attribute '{text}'"),
            ));
            return;
        }
    };
    let attr = |name: &str| format!("class/fc_remote_ports/{rport}/{name}");
    let write = |name: &str, value: String| {
        let mut w = Write::new(
            &p.dev,
            attr(name),
            value.clone(),
            (0, format!("{rport}: failed to set {name} to {value}")),
        );
        w.busy = Some((3, format!("{rport}: rport blocked")));
        w
    };
    if let FastIoFail::Secs(n) = fio {
        if n >= now {
            let mut w = write("dev_loss_tmo", n.saturating_add(1).to_string());
            w.required = true;
            out.push(Step::Write(w));
        }
    } else if dev_loss > DEFAULT_DEV_LOSS_TMO && map.no_path_retry != NoPathRetry::Queue {
        out.push(Step::Log(
            2,
            format!("{rport}: limiting dev_loss_tmo to {DEFAULT_DEV_LOSS_TMO}, since fast_io_fail is not set"),
        ));
        dev_loss = DEFAULT_DEV_LOSS_TMO;
    }
    if fio != FastIoFail::Unset {
        out.push(Step::Write(write("fast_io_fail_tmo", fio.text())));
    }
    if dev_loss != 0 {
        out.push(Step::Write(write("dev_loss_tmo", dev_loss.to_string())));
    }
}

/// An iSCSI session: `fast_io_fail_tmo` is its `recovery_tmo`; it has no
/// `dev_loss_tmo`, and neither off nor 0 is a valid recovery timeout.
fn plan_session(out: &mut Vec<Step>, p: &PathTmo, session: &str, present: bool, fio: FastIoFail, dev_loss: u32) {
    if dev_loss != 0 {
        out.push(Step::Log(3, format!("{}: ignoring dev_loss_tmo on iSCSI", p.dev)));
    }
    if fio == FastIoFail::Unset {
        return;
    }
    if !present {
        out.push(Step::Log(1, format!("{}: No iscsi session for '{session}'", p.dev)));
        return;
    }
    out.push(target_log(p, session));
    match fio {
        FastIoFail::Off => out.push(Step::Log(
            3,
            format!("{}: can't switch off fast_io_fail_tmo on iSCSI", p.dev),
        )),
        // Upstream's words, missing space included.
        FastIoFail::Zero => out.push(Step::Log(
            3,
            format!("{}: can't set fast_io_fail_tmo to '0'on iSCSI", p.dev),
        )),
        FastIoFail::Secs(n) => out.push(Step::Write(Write::new(
            &p.dev,
            format!("class/iscsi_session/{session}/recovery_tmo"),
            n.to_string(),
            (3, format!("{}: Failed to set recovery_tmo to {n}", p.dev)),
        ))),
        FastIoFail::Unset => {}
    }
}

/// A SAS end device: `dev_loss_tmo` is its I_T nexus loss timeout.
fn plan_end_device(out: &mut Vec<Step>, p: &PathTmo, end_device: &str, present: bool, dev_loss: u32) {
    if dev_loss == 0 {
        return;
    }
    if !present {
        out.push(Step::Log(1, format!("{}: No SAS end device for '{end_device}'", p.dev)));
        return;
    }
    out.push(target_log(p, end_device));
    out.push(Step::Write(Write::new(
        &p.dev,
        format!("class/sas_end_device/{end_device}/I_T_nexus_loss_timeout"),
        dev_loss.to_string(),
        (3, format!("{}: failed to update I_T Nexus loss timeout", p.dev)),
    )));
}

/// `max_sectors_kb` for the paths of a map about to be created: every path gets it.
pub fn plan_max_sectors_on_create(kb: Option<u32>, devs: &[String]) -> Vec<Step> {
    let Some(kb) = kb else { return Vec::new() };
    devs.iter()
        .map(|d| {
            Step::Write(Write::new(
                d,
                format!("block/{d}/queue/max_sectors_kb"),
                kb.to_string(),
                (1, format!("failed setting max_sectors_kb on {d}")),
            ))
        })
        .collect()
}

/// `max_sectors_kb` for a path joining a live map, before the reload: only a path
/// not yet in the map may change (the kernel lowers the map's limit on the reload),
/// and only when it differs from what the path has (`current`).
pub fn plan_max_sectors_on_join(kb: Option<u32>, dev: &str, current: Option<u32>) -> Vec<Step> {
    let Some(kb) = kb else { return Vec::new() };
    if current == Some(kb) {
        return Vec::new();
    }
    let mut w = Write::new(
        dev,
        format!("block/{dev}/queue/max_sectors_kb"),
        kb.to_string(),
        (3, format!("failed setting max_sectors_kb on {dev}")),
    );
    w.done = Some((
        3,
        format!("set_path_max_sectors_kb: set max_sectors_kb to {kb} for {dev}"),
    ));
    vec![Step::Write(w)]
}

/// Why a sysfs write did not take.
#[derive(Debug)]
pub enum WriteError {
    /// The kernel (or the file system) refused it with this errno.
    Os(nix::errno::Errno),
    /// Fewer bytes were taken than written.
    Short,
}

impl WriteError {
    fn of(e: &std::io::Error) -> WriteError {
        WriteError::Os(
            e.raw_os_error()
                .map_or(nix::errno::Errno::EIO, nix::errno::Errno::from_raw),
        )
    }
}

impl fmt::Display for WriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WriteError::Os(e) => f.write_str(e.desc()),
            WriteError::Short => f.write_str("write underflow"),
        }
    }
}

impl std::error::Error for WriteError {}

/// Writes `value` to the existing attribute `attr` below `root`'s `/sys`, in one
/// write, as sysfs wants it.
pub fn write_attr(root: &SysfsRoot, attr: &str, value: &str) -> Result<(), WriteError> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(root.sys(attr))
        .map_err(|e| WriteError::of(&e))?;
    match f.write(value.as_bytes()) {
        Ok(n) if n == value.len() => Ok(()),
        Ok(_) => Err(WriteError::Short),
        Err(e) => Err(WriteError::of(&e)),
    }
}

/// Carries out `steps` below `root`; `warned` holds the protocols already reported
/// as not taking timeouts. Log lines go to `log` as (level, text).
pub fn apply(root: &SysfsRoot, steps: &[Step], warned: &mut BTreeSet<String>, log: &mut dyn FnMut(u8, &str)) {
    let mut broken: BTreeSet<&str> = BTreeSet::new();
    for s in steps {
        match s {
            Step::Log(level, text) => log(*level, text),
            Step::Unsupported { dev, protocol } => {
                if warned.insert(protocol.clone()) {
                    log(
                        2,
                        &format!("{dev}: setting scsi timeouts is unsupported for protocol {protocol}"),
                    );
                }
            }
            Step::Write(w) => {
                if broken.contains(w.dev.as_str()) {
                    continue;
                }
                match write_attr(root, &w.attr, &w.value) {
                    Ok(()) => {
                        if let Some((level, text)) = &w.done {
                            log(*level, text);
                        }
                    }
                    Err(e) => {
                        match (&e, &w.busy) {
                            (WriteError::Os(nix::errno::Errno::EBUSY), Some((level, text))) => log(*level, text),
                            _ => log(w.failed.0, &format!("{}: {e}", w.failed.1)),
                        }
                        if w.required {
                            broken.insert(&w.dev);
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "path_attrs_tests.rs"]
mod tests;
