//! Prioritizers: a number per path, higher = preferred; path groups are ordered
//! by it. The decoders and formulas here are pure; the device accesses are the
//! SG_IO (through [`crate::scsi`]) of [`alua_getprio`] and the NVMe admin commands
//! of `ana` ([`super::ana`]).
//!
//! ALUA numbers (shared by `alua` and `sysfs`): active/optimized 50,
//! active/non-optimized 10, lba-dependent 5, standby 1, anything else 0; a
//! preferred port adds 80 unless it is already optimized (always with the
//! `exclusive_pref_bit` argument).

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::regex::ConfigRegex;

use super::pgpolicy::PRIO_UNDEF;
use super::sysfs::{Hcil, PathInfo, SysfsRoot};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prio {
    Const,
    Random,
    Sysfs,
    Alua,
    Ana,
    Weightedpath,
    PathLatency,
}

impl Prio {
    pub fn name(self) -> &'static str {
        match self {
            Prio::Const => "const",
            Prio::Random => "random",
            Prio::Sysfs => "sysfs",
            Prio::Alua => "alua",
            Prio::Ana => "ana",
            Prio::Weightedpath => "weightedpath",
            Prio::PathLatency => "path_latency",
        }
    }

    /// Whether a run sends commands to the device (SG_IO, NVMe admin), which can
    /// take as long as the path hangs; the others read sysfs at most.
    pub fn talks_to_device(self) -> bool {
        matches!(self, Prio::Alua | Prio::Ana)
    }

    pub fn from_name(s: &str) -> Option<Prio> {
        [
            Prio::Const,
            Prio::Random,
            Prio::Sysfs,
            Prio::Alua,
            Prio::Ana,
            Prio::Weightedpath,
            Prio::PathLatency,
        ]
        .into_iter()
        .find(|p| p.name() == s)
    }
}

/// Upstream's prioritizers this build does not implement.
pub const UPSTREAM_NOT_BUILT: &[&str] = &["datacore", "emc", "hds", "hp_sw", "iet", "ontap", "rdac"];

/// The prioritizer a path gets when its `prio` names one this build does not have.
pub const FALLBACK: Prio = Prio::Const;

/// What happens instead of an unsupported `prio`, in the words of
/// [`crate::config::keywords::not_supported`].
pub fn unsupported_instead() -> String {
    format!("{} is used instead", FALLBACK.name())
}

/// The prioritizer of a configured name; one this build does not have falls back to
/// [`FALLBACK`] with the warning to log (the owner logs it at path add, naming the path).
pub fn prio_or_fallback(name: &str) -> (Prio, Option<String>) {
    match Prio::from_name(name) {
        Some(p) => (p, None),
        None => (
            FALLBACK,
            Some(crate::config::keywords::unsupported(
                &format!("prio \"{name}\""),
                &unsupported_instead(),
            )),
        ),
    }
}

/// `const`: every path the same.
pub const CONST_PRIO: i32 = 1;

/// `random`: 1..=10 from the caller's random source.
pub fn random_prio(rng: &mut dyn FnMut() -> u32) -> i32 {
    1 + (rng() % 10) as i32
}

// Asymmetric access states (SPC-4 REPORT TARGET PORT GROUPS).
pub const AAS_OPTIMIZED: u8 = 0x0;
pub const AAS_NON_OPTIMIZED: u8 = 0x1;
pub const AAS_STANDBY: u8 = 0x2;
pub const AAS_UNAVAILABLE: u8 = 0x3;
pub const AAS_LBA_DEPENDENT: u8 = 0x4;
pub const AAS_OFFLINE: u8 = 0xe;
pub const AAS_TRANSITIONING: u8 = 0xf;

fn aas_value(aas: u8) -> i32 {
    match aas {
        AAS_OPTIMIZED => 50,
        AAS_NON_OPTIMIZED => 10,
        AAS_LBA_DEPENDENT => 5,
        AAS_STANDBY => 1,
        _ => 0,
    }
}

/// Priority from the first byte of an RTPG descriptor (preferred bit 0x80, AAS in
/// the low nibble).
pub fn alua_prio(pref_and_aas: u8, exclusive_pref: bool) -> i32 {
    let aas = pref_and_aas & 0x0f;
    let pref = pref_and_aas & 0x80 != 0;
    let base = aas_value(aas);
    if pref && (aas != AAS_OPTIMIZED || exclusive_pref) {
        base + 80
    } else {
        base
    }
}

/// Whether prio_args contain the `exclusive_pref_bit` word.
pub fn exclusive_pref_arg(args: &str) -> bool {
    args.split([' ', '\t']).any(|w| w == "exclusive_pref_bit")
}

/// `sysfs`: the same numbers from scsi_dh_alua's `access_state` and
/// `preferred_path` attributes. [`PRIO_UNDEF`] without an access state.
pub fn sysfs_prio(access_state: Option<&str>, preferred: bool, exclusive_pref: bool) -> i32 {
    let Some(state) = access_state else { return PRIO_UNDEF };
    let base = [
        ("active/optimized", 50),
        ("active/non-optimized", 10),
        ("lba-dependent", 5),
        ("standby", 1),
    ]
    .iter()
    .find(|(name, _)| state.starts_with(name))
    .map_or(0, |&(_, v)| v);
    if preferred && (base != 50 || exclusive_pref) {
        base + 80
    } else {
        base
    }
}

/// Target port group support from standard INQUIRY data (byte 5, bits 5:4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tpgs {
    None,
    Implicit,
    Explicit,
    Both,
}

pub fn inquiry_tpgs(inquiry: &[u8]) -> Option<Tpgs> {
    Some(match (inquiry.get(5)? >> 4) & 0x3 {
        0 => Tpgs::None,
        1 => Tpgs::Implicit,
        2 => Tpgs::Explicit,
        _ => Tpgs::Both,
    })
}

/// Target port group id from VPD page 0x83 (designator type 5); the first one wins.
pub fn tpg_from_vpd83(page: &[u8]) -> Option<u16> {
    if page.len() < 4 || page[1] != 0x83 {
        return None;
    }
    let len = (u16::from_be_bytes([page[2], page[3]]) as usize + 4).min(page.len());
    let mut off = 4;
    while off + 4 <= len {
        let d = &page[off..len];
        let end = 4 + d[3] as usize;
        if end > d.len() {
            return None;
        }
        if d[1] & 0x0f == 0x5 && end >= 8 {
            return Some(u16::from_be_bytes([d[6], d[7]]));
        }
        off += end;
    }
    None
}

/// What a REPORT TARGET PORT GROUPS reply does not tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RtpgError {
    /// The reply does not list our group.
    TpgNotFound(u16),
    /// Too short to hold its own header (the byte count).
    Truncated(usize),
}

impl fmt::Display for RtpgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RtpgError::TpgNotFound(t) => write!(f, "target port group {t} not in REPORT TARGET PORT GROUPS data"),
            RtpgError::Truncated(n) => write!(f, "bad REPORT TARGET PORT GROUPS data: {n} bytes"),
        }
    }
}

impl std::error::Error for RtpgError {}

/// Why a SCSI command of a prioritizer gave no answer.
#[derive(Debug)]
pub enum ScsiError {
    Open {
        dev: String,
        error: std::io::Error,
    },
    /// The SG_IO ioctl itself failed (not a SCSI device, device gone).
    SgIo {
        dev: String,
        opcode: u8,
        error: std::io::Error,
    },
    /// The command completed with an error status.
    Failed {
        dev: String,
        opcode: u8,
        status: u8,
        host: u16,
        driver: u16,
        key: u8,
    },
    ShortInquiry {
        dev: String,
        len: usize,
    },
}

impl fmt::Display for ScsiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScsiError::Open { dev, error } => write!(f, "{dev}: {error}"),
            ScsiError::SgIo { dev, opcode, error } => write!(f, "{dev}: SG_IO opcode {opcode:#04x}: {error}"),
            ScsiError::Failed {
                dev,
                opcode,
                status,
                host,
                driver,
                key,
            } => write!(
                f,
                "{dev}: opcode {opcode:#04x} failed: status {status:#04x} host {host:#06x} driver {driver:#06x} sense key {key:#x}"
            ),
            ScsiError::ShortInquiry { dev, len } => write!(f, "{dev}: short INQUIRY data ({len} bytes)"),
        }
    }
}

impl std::error::Error for ScsiError {}

#[derive(Debug)]
pub enum AluaError {
    /// The device does not do ALUA (INQUIRY TPGS = 0).
    NotSupported,
    /// No TPG identifier in VPD 0x83 although TPGS is set.
    NoTpgId,
    Rtpg(RtpgError),
    Scsi(ScsiError),
}

impl fmt::Display for AluaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AluaError::NotSupported => write!(f, "device does not support ALUA"),
            AluaError::NoTpgId => write!(f, "no target port group id in VPD page 0x83"),
            AluaError::Rtpg(e) => write!(f, "{e}"),
            AluaError::Scsi(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for AluaError {}

/// Bytes the device has for a REPORT TARGET PORT GROUPS reply (header included).
pub fn rtpg_needed_len(resp: &[u8]) -> Option<usize> {
    let h: [u8; 4] = resp.get(..4)?.try_into().ok()?;
    Some(u32::from_be_bytes(h) as usize + 4)
}

/// Find `tpg` in a REPORT TARGET PORT GROUPS reply (length-only header format)
/// and return its first descriptor byte (preferred bit + AAS).
pub fn rtpg_lookup(resp: &[u8], tpg: u16) -> Result<u8, RtpgError> {
    let needed = rtpg_needed_len(resp).ok_or(RtpgError::Truncated(resp.len()))?;
    let end = needed.min(resp.len());
    let mut off = 4;
    while off + 8 <= end {
        let d = &resp[off..end];
        if u16::from_be_bytes([d[2], d[3]]) == tpg {
            return Ok(d[0] & 0x8f);
        }
        off += 8 + 4 * d[7] as usize;
    }
    Err(RtpgError::TpgNotFound(tpg))
}

/// `alua` for a SCSI device node: TPG id from `vpd83` (sysfs copy) or an
/// INQUIRY, then REPORT TARGET PORT GROUPS.
pub fn alua_getprio(
    devnode: &Path,
    vpd83: Option<&[u8]>,
    exclusive_pref: bool,
    timeout_ms: u32,
) -> Result<i32, AluaError> {
    let dev = sgio::Device::open(devnode).map_err(AluaError::Scsi)?;
    let tpg = match vpd83.and_then(tpg_from_vpd83) {
        Some(t) => Some(t),
        None => {
            let mut page = vec![0u8; 4096];
            let n = dev
                .inquiry(Some(0x83), &mut page, timeout_ms)
                .map_err(AluaError::Scsi)?;
            tpg_from_vpd83(&page[..n])
        }
    };
    let Some(tpg) = tpg else {
        let mut inq = [0u8; 96];
        let n = dev.inquiry(None, &mut inq, timeout_ms).map_err(AluaError::Scsi)?;
        return Err(match inquiry_tpgs(&inq[..n]) {
            Some(Tpgs::None) => AluaError::NotSupported,
            _ => AluaError::NoTpgId,
        });
    };
    let mut resp = vec![0u8; 128];
    let mut n = dev.rtpg(&mut resp, timeout_ms).map_err(AluaError::Scsi)?;
    if let Some(need) = rtpg_needed_len(&resp[..n]).filter(|&need| need > resp.len()) {
        // The reply did not fit: ask again with the size the device reported
        // (the CDB allocation length is 32 bits, but keep it sane).
        resp = vec![0u8; need.min(1 << 20)];
        n = dev.rtpg(&mut resp, timeout_ms).map_err(AluaError::Scsi)?;
    }
    Ok(alua_prio(
        rtpg_lookup(&resp[..n], tpg).map_err(AluaError::Rtpg)?,
        exclusive_pref,
    ))
}

/// TPGS bits of a SCSI device, by standard INQUIRY (for detect_prio).
pub fn read_tpgs(devnode: &Path, timeout_ms: u32) -> Result<Tpgs, ScsiError> {
    let dev = sgio::Device::open(devnode)?;
    let mut inq = [0u8; 96];
    let n = dev.inquiry(None, &mut inq, timeout_ms)?;
    inquiry_tpgs(&inq[..n]).ok_or_else(|| ScsiError::ShortInquiry {
        dev: devnode.display().to_string(),
        len: n,
    })
}

/// Whether VPD page 0xC9 identifies an RDAC controller (`vac1` at byte 4).
pub fn is_rdac_page(page: &[u8]) -> bool {
    page.len() >= 8 && page[1] == 0xc9 && &page[4..8] == b"vac1"
}

/// Ask the device for VPD page 0xC9 and check for RDAC (for detect_prio). Any
/// failure (no such page, no SCSI device) counts as "not RDAC", as in
/// multipath-tools.
pub fn read_is_rdac(devnode: &Path, timeout_ms: u32) -> bool {
    let Ok(dev) = sgio::Device::open(devnode) else {
        return false;
    };
    let mut page = [0u8; 44];
    dev.inquiry(Some(0xc9), &mut page, timeout_ms)
        .is_ok_and(|n| is_rdac_page(&page[..n]))
}

/// What a path offers to `weightedpath`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeightedSubject<'a> {
    /// `host:channel:target:lun`
    pub hbtl: String,
    pub dev: &'a str,
    pub serial: &'a str,
    /// `host_wwnn:host_wwpn:target_wwnn:target_wwpn` for FC paths.
    pub wwn: Option<String>,
}

/// `weightedpath`: args `hbtl|devname|serial|wwn REGEX PRIO [REGEX PRIO]...`; the
/// first regex matching the chosen attribute gives the priority, 0 otherwise.
/// `matcher(regex, subject)` is POSIX-ERE search; `None` = regex does not
/// compile (that pair is skipped).
pub fn weightedpath_prio(args: &str, s: &WeightedSubject, matcher: &dyn Fn(&str, &str) -> Option<bool>) -> i32 {
    let mut words = args.split([' ', '\t']).filter(|w| !w.is_empty());
    let subject = match words.next() {
        Some("hbtl") => s.hbtl.clone(),
        Some("devname") => s.dev.to_string(),
        Some("serial") => s.serial.to_string(),
        Some("wwn") => match &s.wwn {
            Some(w) => w.clone(),
            None => return 0,
        },
        _ => return 0,
    };
    while let (Some(re), Some(prio)) = (words.next(), words.next()) {
        if matcher(re, &subject) == Some(true) {
            return atoi(prio);
        }
    }
    0
}

/// C atoi: optional sign and leading digits, 0 if none, saturating.
fn atoi(s: &str) -> i32 {
    let s = s.trim_start();
    let (neg, digits) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let v = digits.bytes().take_while(u8::is_ascii_digit).fold(0i64, |acc, d| {
        (acc * 10 + i64::from(d - b'0')).min(i64::from(i32::MAX) + 1)
    });
    let v = if neg { -v } else { v };
    v.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LatencyArgs {
    pub io_num: u32,
    pub base_num: f64,
}

/// Why `path_latency` arguments were refused.
#[derive(Debug, Clone, PartialEq)]
pub enum LatencyArgsError {
    BadIoNum(String),
    BadBaseNum(String),
    /// Not both of `io_num=` and `base_num=` among the first two words.
    Missing(String),
    IoNumRange(u32),
    BaseNumRange(f64),
}

impl fmt::Display for LatencyArgsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LatencyArgsError::BadIoNum(v) => write!(f, "bad io_num {v:?}"),
            LatencyArgsError::BadBaseNum(v) => write!(f, "bad base_num {v:?}"),
            LatencyArgsError::Missing(args) => write!(f, "expected \"io_num=N base_num=X\", got {args:?}"),
            LatencyArgsError::IoNumRange(n) => write!(f, "io_num {n} outside 20..200"),
            LatencyArgsError::BaseNumRange(b) => write!(f, "base_num {b} outside 1.1..10"),
        }
    }
}

impl std::error::Error for LatencyArgsError {}

/// Defaults used when `path_latency` args are missing or invalid.
pub const LATENCY_DEFAULTS: LatencyArgs = LatencyArgs {
    io_num: 100,
    base_num: 1.778_279_410_04,
};

/// Parse `io_num=N base_num=X` (the first two words, any order; io_num 20..=200,
/// base_num 1.1..=10).
pub fn parse_latency_args(args: &str) -> Result<LatencyArgs, LatencyArgsError> {
    let (mut io, mut base) = (None, None);
    for w in args.split([' ', '\t']).filter(|w| !w.is_empty()).take(2) {
        if let Some(v) = w.strip_prefix("io_num=").filter(|v| !v.is_empty()) {
            io = Some(
                v.parse::<u32>()
                    .map_err(|_| LatencyArgsError::BadIoNum(v.to_string()))?,
            );
        } else if let Some(v) = w.strip_prefix("base_num=").filter(|v| !v.is_empty()) {
            base = Some(
                v.parse::<f64>()
                    .map_err(|_| LatencyArgsError::BadBaseNum(v.to_string()))?,
            );
        }
    }
    let (Some(io_num), Some(base_num)) = (io, base) else {
        return Err(LatencyArgsError::Missing(args.to_string()));
    };
    if !(20..=200).contains(&io_num) {
        return Err(LatencyArgsError::IoNumRange(io_num));
    }
    if !(1.1..=10.0).contains(&base_num) {
        return Err(LatencyArgsError::BaseNumRange(base_num));
    }
    Ok(LatencyArgs { io_num, base_num })
}

/// `path_latency` score from measured read latencies in microseconds: the mean of
/// log_base(latency) over `io_num` reads (zero latencies add nothing), mapped so
/// that 1 us scores log_base(1e8) and >= 100 s scores 0.
pub fn path_latency_prio(latencies_us: &[u64], args: LatencyArgs) -> i32 {
    let lg_base = args.base_num.ln();
    let lg_max = 100_000_000f64.ln() / lg_base;
    let lg_min = 0.0; // log(1 us)
    let total: f64 = latencies_us
        .iter()
        .filter(|&&l| l > 0)
        .map(|&l| (l as f64).ln() / lg_base)
        .sum();
    let n = latencies_us.len().max(1) as f64;
    let avg = total / n;
    if avg <= lg_min {
        (lg_max - lg_min) as i32
    } else if avg >= lg_max {
        0
    } else {
        (lg_max - avg) as i32
    }
}

/// Facts for `detect_prio`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DetectPrioFacts {
    pub bus: super::sysfs::Bus,
    /// NVMe controller reports ANA support.
    pub nvme_ana: bool,
    pub tpgs: Tpgs,
    /// The device answers RDAC's VPD page 0xC9 with "vac1".
    pub rdac: bool,
    /// scsi_dh_alua's `access_state` attribute can be read.
    pub access_state_readable: bool,
}

/// `detect_prio yes`: the prioritizer chosen from the hardware, or `None` to fall
/// through to the configured one.
pub fn detect_prio(f: &DetectPrioFacts) -> Option<Prio> {
    match f.bus {
        super::sysfs::Bus::Nvme => f.nvme_ana.then_some(Prio::Ana),
        super::sysfs::Bus::Scsi => {
            if f.tpgs == Tpgs::None {
                None
            } else if (f.tpgs == Tpgs::Explicit || !f.rdac) && f.access_state_readable {
                Some(Prio::Sysfs)
            } else {
                Some(Prio::Alua)
            }
        }
    }
}

/// The path facts a prioritizer looks at.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub dev: &'a str,
    pub hcil: Hcil,
    pub serial: &'a str,
}

impl<'a> From<&'a PathInfo> for Subject<'a> {
    fn from(p: &'a PathInfo) -> Self {
        Subject {
            dev: &p.dev,
            hcil: p.hcil,
            serial: &p.serial,
        }
    }
}

/// One prioritizer run with everything it needs owned, so it can go to a checker
/// worker: priorities are refreshed after every check that finds the path usable,
/// and the device IO (`alua`'s SG_IO) must not run on the state owner's thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrioJob {
    pub prio: Prio,
    pub args: String,
    /// `detect_prio` on an NVMe path: `prio` is `ana` only if the controller reports ANA,
    /// which the first run asks (off the state owner's thread), else this one.
    pub unless_ana: Option<AnaDetect>,
    pub dev: String,
    pub hcil: Hcil,
    pub serial: String,
    pub root: SysfsRoot,
    /// Where device nodes live (`/dev`).
    pub dev_dir: PathBuf,
    /// The sysfs attributes its runs read, kept open between runs.
    pub attrs: OpenAttrs,
}

/// Sysfs attributes a prioritizer reads at every run (`sysfs`: access_state,
/// preferred_path), kept open ([`super::sysfs::read_kept`]). A cache, not part of
/// what the job is: a clone starts empty and any two compare equal.
#[derive(Default)]
pub struct OpenAttrs(std::sync::Mutex<std::collections::HashMap<&'static str, std::fs::File>>);

impl OpenAttrs {
    /// The text of attribute `name` under `dir`, trimmed; `None` when it cannot be
    /// opened or read.
    pub fn read(&self, dir: &Path, name: &'static str) -> Option<String> {
        let mut open = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // An access state is a word or two.
        let mut buf = [0u8; 256];
        match super::sysfs::read_kept(&mut open, name, &dir.join(name), &mut buf) {
            Ok(n) => Some(String::from_utf8_lossy(&buf[..n]).trim().to_string()),
            // The device went away: a device of that name later is opened anew.
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => {
                open.remove(name);
                None
            }
            // sysfs refuses some reads (access_state without an ALUA handler); the
            // attribute stays open and is asked again at the next run.
            Err(_) => None,
        }
    }
}

impl Clone for OpenAttrs {
    fn clone(&self) -> OpenAttrs {
        OpenAttrs::default()
    }
}

impl PartialEq for OpenAttrs {
    fn eq(&self, _: &OpenAttrs) -> bool {
        true
    }
}

impl Eq for OpenAttrs {}

impl fmt::Debug for OpenAttrs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OpenAttrs")
    }
}

/// The prioritizer an NVMe path gets when its controller does not report ANA, and the
/// answer once a run has had one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnaDetect {
    pub otherwise: (Prio, String),
    supported: std::sync::OnceLock<bool>,
}

impl AnaDetect {
    pub fn new(prio: Prio, args: String) -> AnaDetect {
        AnaDetect {
            otherwise: (prio, args),
            supported: std::sync::OnceLock::new(),
        }
    }
}

impl PrioJob {
    /// The prioritizer the last run used: `ana` for a detecting job only once its
    /// controller has said it reports ANA.
    pub fn effective(&self) -> Prio {
        match &self.unless_ana {
            Some(d) if d.supported.get() != Some(&true) => d.otherwise.0,
            _ => self.prio,
        }
    }

    /// Runs the prioritizer; commands time out after `timeout`.
    pub fn run(&self, timeout: Duration) -> Result<i32, PrioError> {
        let (prio, args) = match &self.unless_ana {
            None => (self.prio, self.args.as_str()),
            Some(d) => {
                let ana = match d.supported.get() {
                    Some(known) => *known,
                    // A path that cannot answer now is asked again at the next run.
                    None => match super::ana::ana_supported(&self.dev_dir.join(&self.dev), timeout) {
                        Ok(known) => *d.supported.get_or_init(|| known),
                        Err(e) => {
                            log::debug!("{}: detect_prio: {e}", self.dev);
                            false
                        }
                    },
                };
                if ana {
                    (Prio::Ana, "")
                } else {
                    (d.otherwise.0, d.otherwise.1.as_str())
                }
            }
        };
        // `random` stays put for the daemon's life: a new number at every check
        // would regroup the map on every check.
        let mut rng = || std::process::id().wrapping_mul(2654435761);
        let regex = |re: &str, s: &str| ConfigRegex::new(re).ok().map(|r| r.is_match(s));
        let mut env = PrioEnv {
            root: &self.root,
            dev_dir: &self.dev_dir,
            timeout_ms: u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX),
            rng: &mut rng,
            regex_search: &regex,
            attrs: Some(&self.attrs),
        };
        let subject = Subject {
            dev: &self.dev,
            hcil: self.hcil,
            serial: &self.serial,
        };
        getprio(prio, args, &subject, &mut env)
    }

    /// Whether [`PrioJob::run`] computes this prioritizer (`path_latency` is not
    /// computed by [`getprio`]).
    pub fn runs_here(prio: Prio) -> bool {
        !matches!(prio, Prio::PathLatency)
    }
}

/// What [`getprio`] needs besides the path.
pub struct PrioEnv<'a> {
    pub root: &'a SysfsRoot,
    /// Where device nodes live (`/dev`).
    pub dev_dir: &'a Path,
    pub timeout_ms: u32,
    pub rng: &'a mut dyn FnMut() -> u32,
    /// POSIX-ERE search, see [`weightedpath_prio`].
    pub regex_search: &'a dyn Fn(&str, &str) -> Option<bool>,
    /// Attributes kept open from one run to the next (a [`PrioJob`]'s); with `None`
    /// they are opened for this run only.
    pub attrs: Option<&'a OpenAttrs>,
}

/// `host_wwnn:host_wwpn:target_wwnn:target_wwpn` of an FC path, from the fc_host
/// and fc_transport classes.
pub fn fc_wwn(root: &SysfsRoot, h: &Hcil) -> Option<String> {
    let read = |rel: String| {
        std::fs::read_to_string(root.sys(&rel))
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    };
    let host = format!("class/fc_host/host{}", h.host);
    let tgt = format!("class/fc_transport/target{}:{}:{}", h.host, h.channel, h.target);
    Some(format!(
        "{}:{}:{}:{}",
        read(format!("{host}/node_name"))?,
        read(format!("{host}/port_name"))?,
        read(format!("{tgt}/node_name"))?,
        read(format!("{tgt}/port_name"))?
    ))
}

/// Why a prioritizer gave no priority.
#[derive(Debug)]
pub enum PrioError {
    NoAccessState(String),
    Alua {
        dev: String,
        error: AluaError,
    },
    Ana {
        dev: String,
        error: super::ana::AnaError,
    },
    /// `path_latency` is not computed by [`getprio`].
    NotRunHere {
        dev: String,
        prio: Prio,
    },
}

impl fmt::Display for PrioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PrioError::NoAccessState(dev) => write!(f, "{dev}: no access_state in sysfs"),
            PrioError::Alua { dev, error } => write!(f, "{dev}: alua: {error}"),
            PrioError::Ana { dev, error } => write!(f, "{dev}: ana: {error}"),
            PrioError::NotRunHere { dev, prio } => {
                write!(f, "{dev}: prioritizer {} is driven by the daemon's IO", prio.name())
            }
        }
    }
}

impl std::error::Error for PrioError {}

/// Run a prioritizer for a path. `Err` explains why there is no priority (the
/// caller then uses [`PRIO_UNDEF`]). `path_latency` needs IO the daemon drives
/// itself ([`path_latency_prio`] scores measured latencies).
pub fn getprio(prio: Prio, args: &str, p: &Subject, env: &mut PrioEnv) -> Result<i32, PrioError> {
    let excl = exclusive_pref_arg(args);
    match prio {
        Prio::Const => Ok(CONST_PRIO),
        Prio::Random => Ok(random_prio(env.rng)),
        Prio::Sysfs => {
            // Read afresh: the ALUA state changes after discovery.
            let device = env.root.sys("block").join(p.dev).join("device");
            // Without a job's kept files, the ones opened here close after this run.
            let once = OpenAttrs::default();
            let attrs = env.attrs.unwrap_or(&once);
            let read = |a: &'static str| attrs.read(&device, a);
            let state = read("access_state").filter(|s| !s.is_empty());
            let Some(state) = state else {
                return Err(PrioError::NoAccessState(p.dev.to_string()));
            };
            Ok(sysfs_prio(
                Some(&state),
                read("preferred_path").as_deref() == Some("1"),
                excl,
            ))
        }
        Prio::Alua => {
            let vpd = std::fs::read(env.root.sys("block").join(p.dev).join("device/vpd_pg83")).ok();
            alua_getprio(&env.dev_dir.join(p.dev), vpd.as_deref(), excl, env.timeout_ms).map_err(|e| PrioError::Alua {
                dev: p.dev.to_string(),
                error: e,
            })
        }
        Prio::Weightedpath => {
            let subject = WeightedSubject {
                hbtl: p.hcil.to_string(),
                dev: p.dev,
                serial: p.serial,
                wwn: fc_wwn(env.root, &p.hcil),
            };
            Ok(weightedpath_prio(args, &subject, env.regex_search))
        }
        Prio::Ana => super::ana::ana_getprio(
            &env.dev_dir.join(p.dev),
            Duration::from_millis(u64::from(env.timeout_ms)),
        )
        .map_err(|error| PrioError::Ana {
            dev: p.dev.to_string(),
            error,
        }),
        Prio::PathLatency => Err(PrioError::NotRunHere {
            dev: p.dev.to_string(),
            prio,
        }),
    }
}

/// INQUIRY and REPORT TARGET PORT GROUPS over [`crate::scsi`], with the
/// prioritizers' error texts.
mod sgio {
    use std::fs::{File, OpenOptions};
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    use std::path::Path;

    use super::ScsiError;

    pub struct Device {
        file: File,
        name: String,
    }

    impl Device {
        pub fn open(path: &Path) -> Result<Device, ScsiError> {
            let file = OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(path)
                .map_err(|error| ScsiError::Open {
                    dev: path.display().to_string(),
                    error,
                })?;
            Ok(Device {
                file,
                name: path.display().to_string(),
            })
        }

        /// Run a data-in command; returns the number of bytes transferred.
        fn data_in(&self, cdb: &[u8], buf: &mut [u8], timeout_ms: u32) -> Result<usize, ScsiError> {
            let len = buf.len();
            let c = crate::scsi::command(
                self.file.as_raw_fd(),
                cdb,
                crate::scsi::Data::FromDevice(buf),
                std::time::Duration::from_millis(u64::from(timeout_ms)),
            )
            .map_err(|error| ScsiError::SgIo {
                dev: self.name.clone(),
                opcode: cdb[0],
                error,
            })?;
            if !c.ok {
                // A "recovered error" sense key still delivered the data.
                let key = c.sense.get(2).map_or(0, |k| k & 0x0f);
                if key != 0x1 {
                    return Err(ScsiError::Failed {
                        dev: self.name.clone(),
                        opcode: cdb[0],
                        status: c.status,
                        host: c.host_status,
                        driver: c.driver_status,
                        key,
                    });
                }
            }
            Ok(len - c.resid)
        }

        /// INQUIRY, standard data (`None`) or a VPD page.
        pub fn inquiry(&self, vpd: Option<u8>, buf: &mut [u8], timeout_ms: u32) -> Result<usize, ScsiError> {
            let len = buf.len().min(0xffff) as u16;
            let [hi, lo] = len.to_be_bytes();
            let cdb = [0x12, u8::from(vpd.is_some()), vpd.unwrap_or(0), hi, lo, 0];
            let n = buf.len().min(len as usize);
            self.data_in(&cdb, &mut buf[..n], timeout_ms)
        }

        /// REPORT TARGET PORT GROUPS (MAINTENANCE IN, service action 0x0a).
        pub fn rtpg(&self, buf: &mut [u8], timeout_ms: u32) -> Result<usize, ScsiError> {
            let len = u32::try_from(buf.len()).unwrap_or(u32::MAX).to_be_bytes();
            let cdb = [0xa3, 0x0a, 0, 0, 0, 0, len[0], len[1], len[2], len[3], 0, 0];
            self.data_in(&cdb, buf, timeout_ms)
        }
    }
}
