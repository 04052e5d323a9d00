//! The `ana` prioritizer: a path's priority from the NVMe Asymmetric Namespace
//! Access state its controller reports for the namespace.
//!
//! Three admin commands on the path's namespace device (over [`crate::nvme`]):
//! Identify Controller (ANA support, the size of the ANA log, whether group ids are
//! fixed), Identify Namespace (its ANA group id, when fixed) and Get Log Page for the
//! ANA log (log id 0x0C). Decoding is pure ([`parse_id_ctrl`], [`parse_ns_anagrpid`],
//! [`find_ana_state`]).
//!
//! Priorities as upstream: optimized 50, non-optimized 10, inaccessible and change
//! 1 (ALUA's standby; no IO can go there, and change is to be treated as
//! inaccessible), persistent loss 0.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::Duration;

use crate::nvme;

/// The ANA log page's id.
pub const LOG_ANA: u8 = 0x0c;
/// Log specific field of the ANA log: "return groups only" (no NSID lists).
pub const LSP_RGO: u8 = 0x01;
/// The ANA log header: change count (8), number of group descriptors (2), reserved (6).
pub const LOG_HEADER_LEN: usize = 16;
/// A group descriptor without its NSID list: group id (4), NSID count (4), change
/// count (8), state (1), reserved (15).
pub const DESC_LEN: usize = 32;
/// A log this large is not what any controller means (a bogus NANAGRPID or MNAN).
pub const MAX_LOG_LEN: usize = 1 << 20;

/// An ANA group's state (the descriptor's state byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnaState {
    Optimized,
    NonOptimized,
    Inaccessible,
    PersistentLoss,
    Change,
}

impl AnaState {
    pub fn from_byte(b: u8) -> Option<AnaState> {
        Some(match b {
            0x01 => AnaState::Optimized,
            0x02 => AnaState::NonOptimized,
            0x03 => AnaState::Inaccessible,
            0x04 => AnaState::PersistentLoss,
            0x0f => AnaState::Change,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            AnaState::Optimized => "optimized",
            AnaState::NonOptimized => "non-optimized",
            AnaState::Inaccessible => "inaccessible",
            AnaState::PersistentLoss => "persistent-loss",
            AnaState::Change => "change",
        }
    }

    /// The path priority for this state.
    pub fn prio(self) -> i32 {
        match self {
            AnaState::Optimized => 50,
            AnaState::NonOptimized => 10,
            AnaState::Inaccessible | AnaState::Change => 1,
            AnaState::PersistentLoss => 0,
        }
    }
}

/// What Identify Controller says about ANA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CtrlAna {
    /// CMIC bit 3: the controller reports ANA.
    pub supported: bool,
    /// ANACAP bit 6: a namespace's ANA group id does not change while attached, so
    /// the log can be read without NSID lists and the group looked up by id.
    pub grpid_fixed: bool,
    /// NANAGRPID: the number of ANA groups.
    pub groups: u32,
    /// MNAN: the most namespaces the subsystem may have.
    pub max_namespaces: u32,
}

impl CtrlAna {
    /// Bytes to ask for: the header, a descriptor per group, and room for every
    /// NSID once when the lists are included (a namespace is in one group only).
    pub fn log_len(&self) -> Result<usize, AnaError> {
        let groups = usize::try_from(self.groups).unwrap_or(usize::MAX);
        let mut len = groups.checked_mul(DESC_LEN).and_then(|n| n.checked_add(LOG_HEADER_LEN));
        if !self.grpid_fixed {
            let nsids = usize::try_from(self.max_namespaces).unwrap_or(usize::MAX);
            len = len.and_then(|l| nsids.checked_mul(4).and_then(|n| l.checked_add(n)));
        }
        match len {
            Some(l) if l <= MAX_LOG_LEN => Ok(l),
            _ => Err(AnaError::LogTooLarge {
                groups: self.groups,
                max_namespaces: self.max_namespaces,
            }),
        }
    }
}

/// Why the `ana` prioritizer has no priority for a path.
#[derive(Debug)]
pub enum AnaError {
    Open {
        dev: String,
        error: std::io::Error,
    },
    /// The ioctl failed (not an NVMe device, controller gone, timeout).
    Ioctl {
        what: &'static str,
        error: std::io::Error,
    },
    /// The controller completed the command with an NVMe error status.
    Status {
        what: &'static str,
        status: u16,
    },
    /// CMIC bit 3 is clear.
    NotSupported,
    /// Identify data shorter than the field read from it.
    ShortIdentify {
        what: &'static str,
        len: usize,
    },
    /// NANAGRPID/MNAN ask for more than [`MAX_LOG_LEN`] bytes.
    LogTooLarge {
        groups: u32,
        max_namespaces: u32,
    },
    /// The log ends inside the header or a descriptor it announces.
    Truncated {
        need: usize,
        len: usize,
    },
    /// Neither the namespace nor its group is in the log.
    NotFound {
        nsid: u32,
        grpid: Option<u32>,
    },
    /// The namespace's descriptor has a state byte the specification does not define.
    InvalidState {
        grpid: u32,
        state: u8,
    },
}

impl fmt::Display for AnaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AnaError::Open { dev, error } => write!(f, "{dev}: {error}"),
            AnaError::Ioctl { what, error } => write!(f, "{what}: {error}"),
            AnaError::Status { what, status } => write!(f, "{what}: NVMe status {status:#06x}"),
            AnaError::NotSupported => f.write_str("ANA not supported by the controller"),
            AnaError::ShortIdentify { what, len } => write!(f, "{what}: identify data of {len} bytes"),
            AnaError::LogTooLarge { groups, max_namespaces } => write!(
                f,
                "ANA log for {groups} groups and {max_namespaces} namespaces exceeds {MAX_LOG_LEN} bytes"
            ),
            AnaError::Truncated { need, len } => write!(f, "ANA log truncated: {need} bytes needed, {len} read"),
            AnaError::NotFound { nsid, grpid: Some(g) } => {
                write!(f, "neither NSID {nsid} nor ANA group {g} in the ANA log")
            }
            AnaError::NotFound { nsid, grpid: None } => write!(f, "NSID {nsid} not in the ANA log"),
            AnaError::InvalidState { grpid, state } => {
                write!(f, "ANA group {grpid}: invalid state {state:#04x}")
            }
        }
    }
}

impl std::error::Error for AnaError {}

fn le32(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(off..off + 4)?.try_into().ok()?))
}

/// Identify Controller data (CNS 1): CMIC (byte 76), ANACAP (343), NANAGRPID
/// (348..352), MNAN (540..544).
pub fn parse_id_ctrl(data: &[u8]) -> Result<CtrlAna, AnaError> {
    let short = || AnaError::ShortIdentify {
        what: "identify controller",
        len: data.len(),
    };
    let cmic = *data.get(76).ok_or_else(short)?;
    let anacap = *data.get(343).ok_or_else(short)?;
    Ok(CtrlAna {
        supported: cmic & (1 << 3) != 0,
        grpid_fixed: anacap & (1 << 6) != 0,
        groups: le32(data, 348).ok_or_else(short)?,
        max_namespaces: le32(data, 540).ok_or_else(short)?,
    })
}

/// ANAGRPID of Identify Namespace data (CNS 0, bytes 92..96).
pub fn parse_ns_anagrpid(data: &[u8]) -> Result<u32, AnaError> {
    le32(data, 92).ok_or(AnaError::ShortIdentify {
        what: "identify namespace",
        len: data.len(),
    })
}

/// The state of the ANA group holding `nsid` (found in a descriptor's NSID list) or,
/// with `grpid`, of that group, from an ANA log page. Descriptors are walked in
/// order; each must lie inside `log`.
pub fn find_ana_state(log: &[u8], nsid: u32, grpid: Option<u32>) -> Result<AnaState, AnaError> {
    let truncated = |need: usize| AnaError::Truncated { need, len: log.len() };
    if log.len() < LOG_HEADER_LEN {
        return Err(truncated(LOG_HEADER_LEN));
    }
    let ngrps = u16::from_le_bytes([log[8], log[9]]);
    let mut off = LOG_HEADER_LEN;
    for _ in 0..ngrps {
        let desc = log.get(off..off + DESC_LEN).ok_or_else(|| truncated(off + DESC_LEN))?;
        let gid = le32(desc, 0).unwrap_or_default();
        let nnsids = le32(desc, 4).unwrap_or_default() as usize;
        let state = desc[16];
        let list_end = nnsids
            .checked_mul(4)
            .and_then(|n| n.checked_add(off + DESC_LEN))
            .ok_or_else(|| truncated(usize::MAX))?;
        let list = log.get(off + DESC_LEN..list_end).ok_or_else(|| truncated(list_end))?;
        let listed = list.chunks_exact(4).any(|c| le32(c, 0) == Some(nsid));
        if listed || grpid.is_some_and(|g| g != 0 && g == gid) {
            return AnaState::from_byte(state).ok_or(AnaError::InvalidState { grpid: gid, state });
        }
        off = list_end;
    }
    Err(AnaError::NotFound { nsid, grpid })
}

/// An NVMe namespace device opened for admin commands.
struct Namespace {
    file: File,
    timeout: Duration,
}

impl Namespace {
    fn open(devnode: &Path, timeout: Duration) -> Result<Namespace, AnaError> {
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(devnode)
            .map_err(|error| AnaError::Open {
                dev: devnode.display().to_string(),
                error,
            })?;
        Ok(Namespace { file, timeout })
    }

    fn admin(&self, what: &'static str, opcode: u8, nsid: u32, cdw: [u32; 6], buf: &mut [u8]) -> Result<(), AnaError> {
        match nvme::admin(self.file.as_raw_fd(), opcode, nsid, cdw, buf, self.timeout) {
            Ok(nvme::Status::Success) => Ok(()),
            Ok(nvme::Status::Error(status)) => Err(AnaError::Status { what, status }),
            Err(error) => Err(AnaError::Ioctl { what, error }),
        }
    }

    fn identify_ctrl(&self) -> Result<CtrlAna, AnaError> {
        let mut data = vec![0u8; nvme::IDENTIFY_LEN];
        let cdw = [nvme::CNS_CONTROLLER, 0, 0, 0, 0, 0];
        self.admin("identify controller", nvme::OPC_IDENTIFY, 0, cdw, &mut data)?;
        parse_id_ctrl(&data)
    }
}

/// Whether the path's controller reports ANA (for `detect_prio`).
pub fn ana_supported(devnode: &Path, timeout: Duration) -> Result<bool, AnaError> {
    Ok(Namespace::open(devnode, timeout)?.identify_ctrl()?.supported)
}

/// The ANA state of the namespace behind `devnode`, as its controller reports it.
pub fn read_ana_state(devnode: &Path, timeout: Duration) -> Result<AnaState, AnaError> {
    let ns = Namespace::open(devnode, timeout)?;
    let ctrl = ns.identify_ctrl()?;
    if !ctrl.supported {
        return Err(AnaError::NotSupported);
    }
    let nsid = nvme::namespace_id(ns.file.as_raw_fd()).map_err(|error| AnaError::Ioctl {
        what: "namespace id",
        error,
    })?;
    let grpid = if ctrl.grpid_fixed {
        let mut data = vec![0u8; nvme::IDENTIFY_LEN];
        let cdw = [nvme::CNS_NAMESPACE, 0, 0, 0, 0, 0];
        ns.admin("identify namespace", nvme::OPC_IDENTIFY, nsid, cdw, &mut data)?;
        Some(parse_ns_anagrpid(&data)?)
    } else {
        None
    };
    let len = ctrl.log_len()?;
    let mut log = vec![0u8; len];
    let lsp = if ctrl.grpid_fixed { LSP_RGO } else { 0 };
    let cdw = nvme::get_log_page_cdws(LOG_ANA, lsp, len);
    ns.admin(
        "get ANA log page",
        nvme::OPC_GET_LOG_PAGE,
        nvme::NSID_ALL,
        cdw,
        &mut log,
    )?;
    find_ana_state(&log, nsid, grpid)
}

/// `ana`: the priority of the path behind `devnode`.
pub fn ana_getprio(devnode: &Path, timeout: Duration) -> Result<i32, AnaError> {
    let state = read_ana_state(devnode, timeout)?;
    log::trace!("{}: ana state {}", devnode.display(), state.name());
    Ok(state.prio())
}
