//! Path discovery from sysfs: one [`PathInfo`] per SCSI or NVMe block device.
//!
//! Everything is read below a configurable [`SysfsRoot`] so tests can build a fake
//! tree in a temporary directory. Odd or missing attributes never panic: a path
//! whose identity cannot be established is reported in [`ScanResult::skipped`] with
//! the reason, and optional attributes simply stay empty.

use std::fmt;
use std::path::{Path, PathBuf};

use super::udevdb::{self, UdevProperties};
use super::vpd;

/// Prefix under which `sys/...` is looked up; `/` on a real system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SysfsRoot(PathBuf);

impl SysfsRoot {
    pub fn new(prefix: impl Into<PathBuf>) -> Self {
        SysfsRoot(prefix.into())
    }
    pub fn real() -> Self {
        SysfsRoot(PathBuf::from("/"))
    }
    pub fn prefix(&self) -> &Path {
        &self.0
    }
    /// `<prefix>/sys/<rel>`
    pub fn sys(&self, rel: &str) -> PathBuf {
        self.0.join("sys").join(rel)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bus {
    Scsi,
    Nvme,
}

/// SCSI host:channel:target:lun. For NVMe: controller instance, cntlid, namespace
/// instance, nsid (the same mapping multipath-tools uses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hcil {
    pub host: u32,
    pub channel: u32,
    pub target: u32,
    pub lun: u64,
}

impl fmt::Display for Hcil {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}:{}", self.host, self.channel, self.target, self.lun)
    }
}

/// Where a path's WWID came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WwidSource {
    /// The named udev property (the `uid_attribute`).
    Udev(String),
    /// Parsed from sysfs `device/vpd_pg83`.
    Vpd83,
    /// The kernel's `wwid` attribute of an NVMe namespace.
    SysfsWwid,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathInfo {
    /// Kernel name, e.g. "sdb".
    pub dev: String,
    pub devt: (u32, u32),
    pub bus: Bus,
    pub hcil: Hcil,
    pub vendor: String,
    pub product: String,
    pub rev: String,
    /// VPD page 0x80 serial (SCSI) or controller serial (NVMe); empty if unknown.
    pub serial: String,
    pub wwid: Option<String>,
    pub wwid_source: Option<WwidSource>,
    /// Why no WWID could be found, when `wwid` is `None`.
    pub wwid_error: Option<String>,
    /// `scsi:fcp`, `scsi:iscsi`, `scsi:sas`, `scsi:ata`, `scsi:usb`, `scsi:unspec`,
    /// `nvme:<transport>` or `nvme:unspec`.
    pub protocol: String,
    /// FC target node name, iSCSI target name or SAS address; empty otherwise.
    pub tgt_node_name: String,
    /// The transport's device in the SCSI device's ancestry, which carries its
    /// timeouts: `rport-H:C-N` (FC), `sessionN` (iSCSI), `end_device-…` (SAS).
    pub transport: Option<String>,
    /// Raw device state: SCSI `running`/`offline`/`blocked`..., NVMe `live`/...
    pub state: String,
    /// Size in 512-byte sectors.
    pub size: u64,
    /// ALUA state from scsi_dh_alua (`active/optimized`, `standby`, ...).
    pub access_state: Option<String>,
    pub preferred_path: Option<bool>,
    /// ALUA target port group id from `vpd_pg83` (for group_by_tpg).
    pub tpg: Option<u16>,
    /// udev properties, `None` when udev has no record of the device.
    pub udev: Option<UdevProperties>,
}

/// How to pick each path's WWID.
pub struct ScanOptions<'a> {
    pub udev_data_dir: &'a Path,
    /// The `uid_attribute` for a path (its vendor/product/bus are already filled
    /// in). An empty string means "use sysfs only".
    pub uid_attribute: &'a dyn Fn(&PathInfo) -> String,
}

/// multipath-tools' built-in `uid_attribute`: ID_WWN for NVMe, ID_SERIAL otherwise.
pub fn default_uid_attribute(p: &PathInfo) -> String {
    match p.bus {
        Bus::Nvme => "ID_WWN".to_string(),
        Bus::Scsi => "ID_SERIAL".to_string(),
    }
}

/// Why a block device is not usable as a path.
#[derive(Debug)]
pub enum PathError {
    /// A name that could leave `sys/block` (`/`, `.`, `..`) or is empty.
    InvalidName(String),
    NotADisk,
    /// A sysfs attribute (or link) that must be there could not be read.
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    /// An attribute holds something other than what the kernel writes there.
    BadAttribute {
        name: &'static str,
        value: String,
    },
    DevtZero,
    NotHcil(String),
    NotNvmeName(String),
    NoNvmeController,
    Udev(std::io::Error),
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathError::InvalidName(d) => write!(f, "invalid device name {d:?}"),
            PathError::NotADisk => f.write_str("not a SCSI or NVMe disk"),
            PathError::Read { path, error } => write!(f, "{}: {error}", path.display()),
            PathError::BadAttribute { name, value } => write!(f, "bad {name} attribute {value:?}"),
            PathError::DevtZero => f.write_str("device number 0:0"),
            PathError::NotHcil(name) => write!(f, "device link target {name:?} is not H:C:T:L"),
            PathError::NotNvmeName(d) => write!(f, "{d:?} is not nvme<C>n<N>"),
            PathError::NoNvmeController => f.write_str("no NVMe controller (device link missing)"),
            PathError::Udev(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for PathError {}

fn check_name(dev: &str) -> Result<(), PathError> {
    if dev.is_empty() || dev.contains('/') || dev == "." || dev == ".." {
        return Err(PathError::InvalidName(dev.to_string()));
    }
    Ok(())
}

#[derive(Debug)]
pub struct SkippedPath {
    pub dev: String,
    pub reason: PathError,
}

#[derive(Debug, Default)]
pub struct ScanResult {
    pub paths: Vec<PathInfo>,
    pub skipped: Vec<SkippedPath>,
}

/// Enumerate `sys/block` and describe every SCSI and NVMe disk, sorted by name.
/// Other devices and unusable disks land in `skipped` with the reason; if
/// `sys/block` itself cannot be read, `skipped` holds one entry with an empty
/// `dev` naming that error.
pub fn scan_paths(root: &SysfsRoot, opts: &ScanOptions) -> ScanResult {
    let mut res = ScanResult::default();
    let dir = root.sys("block");
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) => {
            res.skipped.push(SkippedPath {
                dev: String::new(),
                reason: PathError::Read {
                    path: dir.clone(),
                    error: e,
                },
            });
            return res;
        }
    };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    for dev in names {
        match path_info(root, &dev, opts) {
            Ok(p) => res.paths.push(p),
            Err(reason) => res.skipped.push(SkippedPath { dev, reason }),
        }
    }
    res
}

fn read_attr(path: &Path) -> Result<String, PathError> {
    let bytes = std::fs::read(path).map_err(|error| PathError::Read {
        path: path.to_path_buf(),
        error,
    })?;
    Ok(String::from_utf8_lossy(&bytes)
        .trim_end_matches(['\n', ' ', '\t', '\0'])
        .to_string())
}

fn read_opt(path: &Path) -> Option<String> {
    read_attr(path).ok()
}

fn parse_devt(s: &str) -> Option<(u32, u32)> {
    let (maj, min) = s.trim().split_once(':')?;
    Some((maj.parse().ok()?, min.parse().ok()?))
}

fn parse_hcil(s: &str) -> Option<Hcil> {
    let mut it = s.split(':');
    let h = Hcil {
        host: it.next()?.parse().ok()?,
        channel: it.next()?.parse().ok()?,
        target: it.next()?.parse().ok()?,
        lun: it.next()?.parse().ok()?,
    };
    it.next().is_none().then_some(h)
}

/// `nvme<ctrl>n<ns>`; multipath-hidden `nvme<subsys>c<ctrl>n<ns>` nodes do not match.
fn parse_nvme_name(dev: &str) -> Option<(u32, u32)> {
    let rest = dev.strip_prefix("nvme")?;
    let (c, n) = rest.split_once('n')?;
    Some((c.parse().ok()?, n.parse().ok()?))
}

/// Describe one block device by kernel name. `Err` carries the reason it is not
/// usable as a path.
pub fn path_info(root: &SysfsRoot, dev: &str, opts: &ScanOptions) -> Result<PathInfo, PathError> {
    check_name(dev)?;
    let bus = if dev.starts_with("sd") {
        Bus::Scsi
    } else if dev.starts_with("nvme") {
        Bus::Nvme
    } else {
        return Err(PathError::NotADisk);
    };
    let block = root.sys("block").join(dev);
    let devt_s = read_attr(&block.join("dev"))?;
    let devt = parse_devt(&devt_s).ok_or(PathError::BadAttribute {
        name: "dev",
        value: devt_s,
    })?;
    if devt == (0, 0) {
        return Err(PathError::DevtZero);
    }
    let size_s = read_attr(&block.join("size"))?;
    let size = size_s.parse().map_err(|_| PathError::BadAttribute {
        name: "size",
        value: size_s,
    })?;
    let device = block.join("device");
    let mut p = PathInfo {
        dev: dev.to_string(),
        devt,
        bus,
        hcil: Hcil {
            host: 0,
            channel: 0,
            target: 0,
            lun: 0,
        },
        vendor: String::new(),
        product: String::new(),
        rev: String::new(),
        serial: String::new(),
        wwid: None,
        wwid_source: None,
        wwid_error: None,
        protocol: String::new(),
        tgt_node_name: String::new(),
        transport: None,
        state: String::new(),
        size,
        access_state: None,
        preferred_path: None,
        tpg: None,
        udev: None,
    };
    match bus {
        Bus::Scsi => scsi_info(root, &device, &mut p)?,
        Bus::Nvme => nvme_info(&block, &device, &mut p)?,
    }
    p.udev = udevdb::read(opts.udev_data_dir, devt.0, devt.1).map_err(PathError::Udev)?;
    let attr = (opts.uid_attribute)(&p);
    let from_udev = (!attr.is_empty())
        .then(|| p.udev.as_ref().and_then(|u| u.get(&attr)).map(str::trim))
        .flatten()
        .filter(|v| !v.is_empty());
    if let Some(w) = from_udev {
        // multipath-tools keeps at most WWID_MAX_LEN bytes of a WWID.
        let mut w = w.to_string();
        while w.len() > vpd::WWID_MAX_LEN {
            w.pop();
        }
        p.wwid = Some(w);
        p.wwid_source = Some(WwidSource::Udev(attr));
    } else {
        let fallback = match bus {
            Bus::Scsi => std::fs::read(device.join("vpd_pg83"))
                .map_err(|e| format!("vpd_pg83: {e}"))
                .and_then(|b| vpd::parse_pg83(&b).map_err(|e| format!("vpd_pg83: {e}")))
                .map(|w| (w, WwidSource::Vpd83)),
            Bus::Nvme => read_attr(&block.join("wwid"))
                .map_err(|e| e.to_string())
                .and_then(|w| {
                    if w.is_empty() {
                        Err("empty wwid attribute".to_string())
                    } else {
                        Ok(w)
                    }
                })
                .map(|w| (w, WwidSource::SysfsWwid)),
        };
        match fallback {
            Ok((w, src)) => {
                p.wwid = Some(w);
                p.wwid_source = Some(src);
            }
            Err(e) => {
                let why = if attr.is_empty() {
                    e
                } else {
                    format!("no udev property {attr}; sysfs fallback failed: {e}")
                };
                p.wwid_error = Some(why);
            }
        }
    }
    Ok(p)
}

fn scsi_info(root: &SysfsRoot, device: &Path, p: &mut PathInfo) -> Result<(), PathError> {
    let real = std::fs::canonicalize(device).map_err(|error| PathError::Read {
        path: device.to_path_buf(),
        error,
    })?;
    let name = real.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    p.hcil = parse_hcil(name).ok_or_else(|| PathError::NotHcil(name.to_string()))?;
    let unknown = || "UNKNOWN".to_string();
    p.vendor = read_opt(&device.join("vendor"))
        .filter(|v| !v.is_empty())
        .unwrap_or_else(unknown);
    p.product = read_opt(&device.join("model"))
        .filter(|v| !v.is_empty())
        .unwrap_or_else(unknown);
    p.rev = read_opt(&device.join("rev")).unwrap_or_else(unknown);
    p.state = read_opt(&device.join("state")).unwrap_or_default();
    p.serial = std::fs::read(device.join("vpd_pg80"))
        .ok()
        .and_then(|b| vpd::parse_pg80(&b).ok())
        .unwrap_or_default();
    p.tpg = std::fs::read(device.join("vpd_pg83"))
        .ok()
        .and_then(|b| super::prio::tpg_from_vpd83(&b));
    p.access_state = read_opt(&device.join("access_state")).filter(|v| !v.is_empty());
    p.preferred_path = read_opt(&device.join("preferred_path")).and_then(|v| match v.as_str() {
        "1" => Some(true),
        "0" => Some(false),
        _ => None,
    });
    // The transport shows in the device's ancestry: rport-* (FC), session* (iSCSI),
    // end_device-* (SAS), ata* (libata), usb* (USB storage).
    p.protocol = "scsi:unspec".to_string();
    for comp in real.ancestors().filter_map(|a| a.file_name()?.to_str()) {
        let (proto, class_attr) = if comp.starts_with("rport-") {
            ("scsi:fcp", Some(("fc_remote_ports", "node_name")))
        } else if numbered(comp, "session") {
            ("scsi:iscsi", Some(("iscsi_session", "targetname")))
        } else if comp.starts_with("end_device-") {
            ("scsi:sas", Some(("sas_device", "sas_address")))
        } else if numbered(comp, "ata") {
            ("scsi:ata", None)
        } else if numbered(comp, "usb") {
            ("scsi:usb", None)
        } else {
            continue;
        };
        p.protocol = proto.to_string();
        if let Some((class, attr)) = class_attr {
            p.tgt_node_name = read_opt(&root.sys("class").join(class).join(comp).join(attr)).unwrap_or_default();
            p.transport = Some(comp.to_string());
        }
        break;
    }
    Ok(())
}

/// `prefix` followed by at least one digit and nothing else.
fn numbered(comp: &str, prefix: &str) -> bool {
    comp.strip_prefix(prefix)
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

fn nvme_info(block: &Path, ctrl: &Path, p: &mut PathInfo) -> Result<(), PathError> {
    let (c, n) = parse_nvme_name(&p.dev).ok_or_else(|| PathError::NotNvmeName(p.dev.clone()))?;
    if !ctrl.exists() {
        return Err(PathError::NoNvmeController);
    }
    let num = |path: &Path| read_opt(path).and_then(|v| v.parse().ok()).unwrap_or(0);
    p.hcil = Hcil {
        host: c,
        channel: num(&ctrl.join("cntlid")) as u32,
        target: n,
        lun: num(&block.join("nsid")),
    };
    p.vendor = "NVME".to_string();
    p.product = read_opt(&ctrl.join("model")).unwrap_or_default();
    p.serial = read_opt(&ctrl.join("serial")).unwrap_or_default();
    p.rev = read_opt(&ctrl.join("firmware_rev")).unwrap_or_default();
    p.state = read_opt(&ctrl.join("state")).unwrap_or_default();
    let transport = read_opt(&ctrl.join("transport")).unwrap_or_default();
    p.protocol = match transport.as_str() {
        "pcie" | "rdma" | "fc" | "tcp" | "loop" | "apple-nvme" => format!("nvme:{transport}"),
        _ => "nvme:unspec".to_string(),
    };
    Ok(())
}

/// Reads the sysfs attribute `file` into `buf` (the length read), through a
/// descriptor kept in `open` under `key`: opened on the first read, read again at
/// offset 0 after that, which has sysfs make the text anew. Under the lab's TCG an
/// open's walk through `/sys/block`'s links cost about 0.2 ms, for files read at every
/// check of every path. An error leaves what is kept as it is: the caller knows
/// whether it means the device went away.
pub fn read_kept<K: std::hash::Hash + Eq>(
    open: &mut std::collections::HashMap<K, std::fs::File>,
    key: K,
    file: &Path,
    buf: &mut [u8],
) -> std::io::Result<usize> {
    use std::os::unix::fs::FileExt;
    let f = match open.entry(key) {
        std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
        std::collections::hash_map::Entry::Vacant(e) => e.insert(std::fs::File::open(file)?),
    };
    f.read_at(buf, 0)
}

/// The current raw state attribute of a path (`running`, `offline`, `live`...).
pub fn read_state(root: &SysfsRoot, dev: &str) -> Result<String, PathError> {
    check_name(dev)?;
    read_attr(&root.sys("block").join(dev).join("device").join("state"))
}

/// Names of the device-mapper multipath maps holding `dev` (from
/// `sys/block/<dev>/holders/*/dm/uuid` starting with `mpath-`).
pub fn multipath_holders(root: &SysfsRoot, dev: &str) -> Vec<String> {
    if dev.is_empty() || dev.contains('/') || dev == "." || dev == ".." {
        return Vec::new();
    }
    let Ok(entries) = std::fs::read_dir(root.sys("block").join(dev).join("holders")) else {
        return Vec::new();
    };
    let mut maps: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|e| read_opt(&e.path().join("dm/uuid")).is_some_and(|u| u.starts_with("mpath-")))
        .filter_map(|e| read_opt(&e.path().join("dm/name")).or_else(|| e.file_name().into_string().ok()))
        .collect();
    maps.sort();
    maps
}

/// Whether a disk or one of its partitions is in use: held by another block
/// device (LVM, md...), mounted (`mountinfo` = text of /proc/self/mountinfo) or
/// used as swap (`swaps` = text of /proc/swaps). Used by find_multipaths
/// greedy/smart to leave busy disks alone.
pub fn device_in_use(root: &SysfsRoot, dev: &str, mountinfo: &str, swaps: &str) -> bool {
    if dev.is_empty() || dev.contains('/') || dev == "." || dev == ".." {
        return false;
    }
    let disk = root.sys("block").join(dev);
    let mut parts = vec![(dev.to_string(), disk.clone())];
    if let Ok(entries) = std::fs::read_dir(&disk) {
        for e in entries
            .filter_map(Result::ok)
            .filter(|e| e.path().join("partition").exists())
        {
            if let Ok(name) = e.file_name().into_string() {
                parts.push((name, e.path()));
            }
        }
    }
    let has_holders = |dir: &Path| std::fs::read_dir(dir.join("holders")).is_ok_and(|mut d| d.next().is_some());
    // mountinfo: the mount source is the first field after the " - " separator
    // and the filesystem type.
    let mounted: Vec<&str> = mountinfo
        .lines()
        .filter_map(|l| l.split_once(" - ")?.1.split_whitespace().nth(1))
        .collect();
    let swapped: Vec<&str> = swaps
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    parts.iter().any(|(name, dir)| {
        let node = format!("/dev/{name}");
        has_holders(dir) || mounted.contains(&node.as_str()) || swapped.contains(&node.as_str())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_parsers() {
        assert_eq!(parse_devt("8:16\n"), Some((8, 16)));
        assert_eq!(parse_devt("8-16"), None);
        assert_eq!(
            parse_hcil("1:0:2:3"),
            Some(Hcil {
                host: 1,
                channel: 0,
                target: 2,
                lun: 3
            })
        );
        assert_eq!(parse_hcil("1:0:2"), None);
        assert_eq!(parse_hcil("1:0:2:3:4"), None);
        assert_eq!(parse_hcil("target1:0:2"), None);
        assert_eq!(parse_nvme_name("nvme0n1"), Some((0, 1)));
        assert_eq!(parse_nvme_name("nvme0c1n1"), None);
        assert_eq!(
            Hcil {
                host: 1,
                channel: 0,
                target: 0,
                lun: 0
            }
            .to_string(),
            "1:0:0:0"
        );
    }
}
