//! The kernel device-mapper interface: `/dev/mapper/control` ioctls, by hand.
//!
//! Every command passes one buffer: a `struct dm_ioctl` header followed by a
//! command-specific payload; replies come back in the same buffer from
//! `data_start`. When a reply does not fit, the kernel sets DM_BUFFER_FULL_FLAG and
//! we retry with a bigger buffer.

use std::fs::{File, OpenOptions};
use std::mem::size_of;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use nix::errno::Errno;

use super::udev_cookie::{PendingUdev, UdevFlags, UdevSync, Uevent, event_nr, waited};
use super::{DmBackend, DmDevice, DmError, DmInfo, Suspend, TargetLine};

pub const DM_CONTROL: &str = "/dev/mapper/control";

const DM_NAME_LEN: usize = 128;
const DM_UUID_LEN: usize = 129;
const DM_MAX_TYPE_NAME: usize = 16;

/// `struct dm_ioctl` from `<linux/dm-ioctl.h>`.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct DmIoctlHeader {
    version: [u32; 3],
    data_size: u32,
    data_start: u32,
    target_count: u32,
    open_count: i32,
    flags: u32,
    event_nr: u32,
    padding: u32,
    dev: u64,
    name: [u8; DM_NAME_LEN],
    uuid: [u8; DM_UUID_LEN],
    data: [u8; 7],
}

/// `struct dm_target_spec`; the parameter string follows it.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct DmTargetSpec {
    sector_start: u64,
    length: u64,
    status: i32,
    next: u32,
    target_type: [u8; DM_MAX_TYPE_NAME],
}

/// `struct dm_target_msg`; the message string follows the sector.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct DmTargetMsg {
    sector: u64,
}

/// `struct dm_name_list` without its flexible `name`, which starts at NAME_LIST_NAME_OFFSET.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct DmNameList {
    dev: u64,
    next: u32,
}
const NAME_LIST_NAME_OFFSET: usize = 12;

const HEADER_SIZE: usize = size_of::<DmIoctlHeader>();
const SPEC_SIZE: usize = size_of::<DmTargetSpec>();

/// Interface version we speak. The kernel refuses a request whose major differs
/// or whose minor is newer than its own, so we claim minor 0 and read the real one.
const CLIENT_VERSION: [u32; 3] = [4, 0, 0];
/// DM_LIST_DEVICES carries event numbers from this minor version on.
const EVENT_NR_MINOR: u32 = 37;

const DM_READONLY_FLAG: u32 = 1 << 0;
const DM_SUSPEND_FLAG: u32 = 1 << 1;
const DM_STATUS_TABLE_FLAG: u32 = 1 << 4;
const DM_ACTIVE_PRESENT_FLAG: u32 = 1 << 5;
const DM_INACTIVE_PRESENT_FLAG: u32 = 1 << 6;
const DM_BUFFER_FULL_FLAG: u32 = 1 << 8;
const DM_SKIP_LOCKFS_FLAG: u32 = 1 << 10;
const DM_NOFLUSH_FLAG: u32 = 1 << 11;
/// Set by the kernel in a resume, remove or rename reply when it sent a uevent.
const DM_UEVENT_GENERATED_FLAG: u32 = 1 << 13;
const DM_DATA_OUT_FLAG: u32 = 1 << 16;
const DM_DEFERRED_REMOVE: u32 = 1 << 17;

/// The buffer a command starts with until one of its replies needed more. Small, as
/// most replies are (a map's status or table is a few hundred bytes): the kernel copies
/// in and allocates the whole buffer whatever the reply needs, and at 16 KiB for every
/// check's status read that was a sixth of the state owner's CPU in the lab.
const INITIAL_BUFFER: usize = 2 * 1024;
const MAX_BUFFER: usize = 64 * 1024 * 1024;

/// The buffer each command starts with: the largest one of its replies needed so far, so
/// that a command with large replies (a list of thousands of maps) does not go through
/// the doublings again every time.
struct StartSizes([AtomicUsize; 17]);

impl StartSizes {
    fn new() -> Self {
        StartSizes(std::array::from_fn(|_| AtomicUsize::new(INITIAL_BUFFER)))
    }

    /// `exchange` for `cmd`, starting at its size and keeping the size that fit.
    fn exchange(
        &self,
        cmd: Cmd,
        name: Option<&str>,
        header: DmIoctlHeader,
        payload: &[u8],
        ioctl: &mut dyn FnMut(&mut Buffer) -> nix::Result<()>,
    ) -> Result<Reply, DmError> {
        let slot = &self.0[cmd as usize];
        let reply = exchange(cmd, name, header, payload, slot.load(Ordering::Relaxed), ioctl)?;
        slot.fetch_max(reply.buffer, Ordering::Relaxed);
        Ok(reply)
    }
}

/// The DM commands we issue, with their `_IOWR(0xfd, nr, struct dm_ioctl)` numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmd {
    Version = 0,
    ListDevices = 2,
    DevCreate = 3,
    DevRemove = 4,
    DevRename = 5,
    DevSuspend = 6,
    DevStatus = 7,
    TableLoad = 9,
    TableStatus = 12,
    TargetMsg = 14,
    DevArmPoll = 16,
}

impl Cmd {
    fn name(self) -> &'static str {
        match self {
            Cmd::Version => "DM_VERSION",
            Cmd::ListDevices => "DM_LIST_DEVICES",
            Cmd::DevCreate => "DM_DEV_CREATE",
            Cmd::DevRemove => "DM_DEV_REMOVE",
            Cmd::DevRename => "DM_DEV_RENAME",
            Cmd::DevSuspend => "DM_DEV_SUSPEND",
            Cmd::DevStatus => "DM_DEV_STATUS",
            Cmd::TableLoad => "DM_TABLE_LOAD",
            Cmd::TableStatus => "DM_TABLE_STATUS",
            Cmd::TargetMsg => "DM_TARGET_MSG",
            Cmd::DevArmPoll => "DM_DEV_ARM_POLL",
        }
    }
}

mod raw {
    use super::DmIoctlHeader;
    nix::ioctl_readwrite!(version, 0xfd, 0, DmIoctlHeader);
    nix::ioctl_readwrite!(list_devices, 0xfd, 2, DmIoctlHeader);
    nix::ioctl_readwrite!(dev_create, 0xfd, 3, DmIoctlHeader);
    nix::ioctl_readwrite!(dev_remove, 0xfd, 4, DmIoctlHeader);
    nix::ioctl_readwrite!(dev_rename, 0xfd, 5, DmIoctlHeader);
    nix::ioctl_readwrite!(dev_suspend, 0xfd, 6, DmIoctlHeader);
    nix::ioctl_readwrite!(dev_status, 0xfd, 7, DmIoctlHeader);
    nix::ioctl_readwrite!(table_load, 0xfd, 9, DmIoctlHeader);
    nix::ioctl_readwrite!(table_status, 0xfd, 12, DmIoctlHeader);
    nix::ioctl_readwrite!(target_msg, 0xfd, 14, DmIoctlHeader);
    nix::ioctl_readwrite!(dev_arm_poll, 0xfd, 16, DmIoctlHeader);
}

/// Kernel `new_encode_dev` as used in `dm_ioctl.dev` and `dm_name_list.dev`.
fn decode_dev(dev: u64) -> (u32, u32) {
    let major = ((dev >> 8) & 0xfff) as u32;
    let minor = ((dev & 0xff) | ((dev >> 12) & 0xfff00)) as u32;
    (major, minor)
}

/// NUL-terminated text from a fixed-size field.
fn c_text(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// A request/reply buffer, 8-byte aligned as the kernel's structs require.
struct Buffer {
    words: Vec<u64>,
}

impl Buffer {
    fn new(len: usize) -> Self {
        Buffer {
            words: vec![0; len.div_ceil(8)],
        }
    }

    fn bytes(&self) -> &[u8] {
        // SAFETY: a u64 slice reinterpreted as bytes: same memory, no invalid values.
        unsafe { std::slice::from_raw_parts(self.words.as_ptr().cast(), self.words.len() * 8) }
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `bytes`; the borrow is exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.words.as_mut_ptr().cast(), self.words.len() * 8) }
    }

    fn header(&self) -> DmIoctlHeader {
        // SAFETY: the buffer is at least HEADER_SIZE bytes and 8-aligned; every bit
        // pattern is a valid DmIoctlHeader (integers and byte arrays only).
        unsafe { std::ptr::read(self.words.as_ptr().cast()) }
    }

    fn set_header(&mut self, h: &DmIoctlHeader) {
        // SAFETY: as in `header`.
        unsafe { std::ptr::write(self.words.as_mut_ptr().cast(), *h) }
    }
}

/// Appends a `T` (a repr(C) plain-data struct) to a byte payload.
fn push_struct<T: Copy>(out: &mut Vec<u8>, v: &T) {
    // SAFETY: T is one of our repr(C) structs made of integers and byte arrays with no
    // padding inside (DmTargetSpec, DmTargetMsg), so every byte is initialised.
    let b = unsafe { std::slice::from_raw_parts((v as *const T).cast::<u8>(), size_of::<T>()) };
    out.extend_from_slice(b);
}

fn pad8(out: &mut Vec<u8>) {
    while !out.len().is_multiple_of(8) {
        out.push(0);
    }
}

/// The reply of one ioctl: the header and the data area (data_start..data_size).
struct Reply {
    header: DmIoctlHeader,
    data: Vec<u8>,
    /// The size of the buffer the reply fit in.
    buffer: usize,
}

/// One request/reply round: lays out header + payload in a buffer of `start` bytes (more
/// if the payload needs it), calls `ioctl`, and retries with a doubled buffer while the
/// kernel reports DM_BUFFER_FULL_FLAG.
fn exchange(
    cmd: Cmd,
    name: Option<&str>,
    header: DmIoctlHeader,
    payload: &[u8],
    start: usize,
    ioctl: &mut dyn FnMut(&mut Buffer) -> nix::Result<()>,
) -> Result<Reply, DmError> {
    let bad = |why: String| DmError::BadReply {
        op: cmd.name(),
        name: name.map(str::to_owned),
        why: why.to_string(),
    };
    let mut size = (HEADER_SIZE + payload.len()).max(start).next_multiple_of(8);
    loop {
        let mut h = header;
        h.data_size = u32::try_from(size).map_err(|_| bad(format!("buffer of {size} bytes")))?;
        let mut buf = Buffer::new(size);
        buf.set_header(&h);
        buf.bytes_mut()[HEADER_SIZE..HEADER_SIZE + payload.len()].copy_from_slice(payload);
        ioctl(&mut buf).map_err(|errno| DmError::Ioctl {
            op: cmd.name(),
            name: name.map(str::to_owned),
            errno,
        })?;
        let out = buf.header();
        if out.flags & DM_BUFFER_FULL_FLAG != 0 {
            if size >= MAX_BUFFER {
                return Err(bad(format!("reply larger than {MAX_BUFFER} bytes")));
            }
            size *= 2;
            continue;
        }
        let start = out.data_start as usize;
        let end = out.data_size as usize;
        let data = match buf.bytes().get(start..end) {
            Some(d) => d.to_vec(),
            None if end <= start => Vec::new(),
            None => {
                return Err(bad(format!("data {start}..{end} outside the {size}-byte buffer")));
            }
        };
        return Ok(Reply {
            header: out,
            data,
            buffer: size,
        });
    }
}

/// The header flags of a DM_DEV_SUSPEND: a suspend, or (`suspend` false) a resume, which
/// suspends the map itself as `how` says when it swaps in a loaded table.
fn suspend_flags(suspend: bool, how: Suspend) -> u32 {
    let flag = |on: bool, f: u32| if on { f } else { 0 };
    flag(suspend, DM_SUSPEND_FLAG) | flag(how.noflush, DM_NOFLUSH_FLAG) | flag(how.skip_lockfs, DM_SKIP_LOCKFS_FLAG)
}

/// Device-mapper over `/dev/mapper/control`.
pub struct DmIoctl {
    control: File,
    version: [u32; 3],
    /// Cookies for the ioctls that make the kernel send a uevent (resume, remove, rename).
    udev: UdevSync,
    sizes: StartSizes,
}

impl DmIoctl {
    /// Opens the standard control node and checks the interface version.
    pub fn open() -> Result<Self, DmError> {
        Self::open_path(Path::new(DM_CONTROL))
    }

    /// Opens a control node at `path` (tests, unusual /dev layouts).
    pub fn open_path(path: &Path) -> Result<Self, DmError> {
        let control = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(path)
            .map_err(|e| DmError::Unavailable {
                path: path.display().to_string(),
                errno: Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
            })?;
        let mut dm = DmIoctl {
            control,
            version: [0; 3],
            udev: UdevSync::from_env(),
            sizes: StartSizes::new(),
        };
        let reply = dm.run(Cmd::Version, None, 0, &[])?;
        dm.version = reply.header.version;
        if dm.version[0] != CLIENT_VERSION[0] {
            return Err(DmError::BadReply {
                op: Cmd::Version.name(),
                name: None,
                why: format!(
                    "kernel interface {}.{}.{}, need 4.x",
                    dm.version[0], dm.version[1], dm.version[2]
                ),
            });
        }
        Ok(dm)
    }

    /// Replaces the udev synchronisation (tests; the default follows `DM_DISABLE_UDEV`).
    pub fn set_udev_sync(&mut self, udev: UdevSync) {
        self.udev = udev;
    }

    /// The control fd: readable after `arm_poll` once a map has a table event.
    pub fn control_fd(&self) -> BorrowedFd<'_> {
        self.control.as_fd()
    }

    fn header_for(cmd: Cmd, name: Option<&str>, uuid: Option<&str>, flags: u32) -> Result<DmIoctlHeader, DmError> {
        let invalid = |why: String| DmError::Invalid {
            op: cmd.name(),
            name: name.map(str::to_owned),
            why: why.to_string(),
        };
        let mut h = DmIoctlHeader {
            version: CLIENT_VERSION,
            data_size: 0,
            data_start: HEADER_SIZE as u32,
            target_count: 0,
            open_count: 0,
            flags,
            event_nr: 0,
            padding: 0,
            dev: 0,
            name: [0; DM_NAME_LEN],
            uuid: [0; DM_UUID_LEN],
            data: [0; 7],
        };
        if let Some(n) = name {
            check_name(n).map_err(|e| invalid(e.to_string()))?;
            h.name[..n.len()].copy_from_slice(n.as_bytes());
        }
        if let Some(u) = uuid {
            if u.len() >= DM_UUID_LEN || u.contains('\0') {
                return Err(invalid(format!(
                    "uuid {u:?} longer than {} bytes or contains NUL",
                    DM_UUID_LEN - 1
                )));
            }
            h.uuid[..u.len()].copy_from_slice(u.as_bytes());
        }
        Ok(h)
    }

    fn run(&self, cmd: Cmd, name: Option<&str>, flags: u32, payload: &[u8]) -> Result<Reply, DmError> {
        self.send(cmd, name, Self::header_for(cmd, name, None, flags)?, payload)
    }

    /// An ioctl that makes the kernel send a uevent, with a udev cookie around it, waited for.
    fn run_with_cookie(
        &self,
        cmd: Cmd,
        name: &str,
        flags: u32,
        udev: UdevFlags,
        payload: &[u8],
    ) -> Result<Reply, DmError> {
        self.start_with_cookie(cmd, name, flags, udev, payload).map(waited)
    }

    /// `run_with_cookie` without the wait: the cookie of a uevent sent comes back.
    fn start_with_cookie(
        &self,
        cmd: Cmd,
        name: &str,
        flags: u32,
        udev: UdevFlags,
        payload: &[u8],
    ) -> Result<(Reply, Option<PendingUdev>), DmError> {
        let what = format!("{} {name}", cmd.name());
        self.udev.start(&what, udev, |nr| {
            let mut h = Self::header_for(cmd, Some(name), None, flags)?;
            h.event_nr = nr;
            let r = self.send(cmd, Some(name), h, payload)?;
            let sent = if self.version[1] < 17 || r.header.flags & DM_UEVENT_GENERATED_FLAG != 0 {
                // before interface 4.17 the kernel does not say: assume it did, as libdevmapper
                Uevent::Sent
            } else {
                Uevent::NotSent
            };
            Ok((r, sent))
        })
    }

    /// One ioctl with a header made by `header_for` (and completed by the caller).
    fn send(&self, cmd: Cmd, name: Option<&str>, header: DmIoctlHeader, payload: &[u8]) -> Result<Reply, DmError> {
        let fd = self.control.as_raw_fd();
        self.sizes
            .exchange(cmd, name, header, payload, &mut |buf: &mut Buffer| {
                let p = buf.words.as_mut_ptr().cast::<DmIoctlHeader>();
                // SAFETY: `p` points to the buffer's writable, 8-aligned bytes, starting with
                // a valid header whose data_size (set by `exchange`) bounds the kernel's writes.
                unsafe {
                    match cmd {
                        Cmd::Version => raw::version(fd, p),
                        Cmd::ListDevices => raw::list_devices(fd, p),
                        Cmd::DevCreate => raw::dev_create(fd, p),
                        Cmd::DevRemove => raw::dev_remove(fd, p),
                        Cmd::DevRename => raw::dev_rename(fd, p),
                        Cmd::DevSuspend => raw::dev_suspend(fd, p),
                        Cmd::DevStatus => raw::dev_status(fd, p),
                        Cmd::TableLoad => raw::table_load(fd, p),
                        Cmd::TableStatus => raw::table_status(fd, p),
                        Cmd::TargetMsg => raw::target_msg(fd, p),
                        Cmd::DevArmPoll => raw::dev_arm_poll(fd, p),
                    }
                }
                .map(|_| ())
            })
    }

    fn info_from(&self, h: &DmIoctlHeader) -> DmInfo {
        let (major, minor) = decode_dev(h.dev);
        DmInfo {
            name: c_text(&h.name),
            uuid: c_text(&h.uuid),
            major,
            minor,
            open_count: h.open_count,
            event_nr: h.event_nr,
            target_count: h.target_count,
            suspended: h.flags & DM_SUSPEND_FLAG != 0,
            read_only: h.flags & DM_READONLY_FLAG != 0,
            live_table: h.flags & DM_ACTIVE_PRESENT_FLAG != 0,
            inactive_table: h.flags & DM_INACTIVE_PRESENT_FLAG != 0,
        }
    }

    fn table_or_status(&self, name: &str, flags: u32) -> Result<Vec<TargetLine>, DmError> {
        let reply = self.run(Cmd::TableStatus, Some(name), flags, &[])?;
        parse_target_specs(&reply.data, reply.header.target_count).map_err(|why| DmError::BadReply {
            op: Cmd::TableStatus.name(),
            name: Some(name.to_owned()),
            why: why.to_string(),
        })
    }
}

/// What is wrong with a request before it is sent, or with the kernel's reply.
#[derive(Debug, Clone, PartialEq, Eq)]
enum WireError {
    BadName(String),
    BadTargetType(String),
    ParamsNul,
    ParamsTooLong,
    SpecPastEnd { target: u32, at: usize, len: usize },
    NextNotAdvancing { target: u32, next: usize },
    RecordTruncated(usize),
    NameNotTerminated(usize),
    NextRecordPastEnd { at: usize, len: usize },
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WireError::BadName(n) => write!(
                f,
                "map name {n:?} must be 1..{} bytes without '/' or NUL",
                DM_NAME_LEN - 1
            ),
            WireError::BadTargetType(t) => write!(f, "target type {t:?} must be 1..{} bytes", DM_MAX_TYPE_NAME - 1),
            WireError::ParamsNul => f.write_str("table parameters contain NUL"),
            WireError::ParamsTooLong => f.write_str("table parameters too long"),
            WireError::SpecPastEnd { target, at, len } => {
                write!(f, "target {target} at byte {at} runs past the {len}-byte reply")
            }
            WireError::NextNotAdvancing { target, next } => {
                write!(f, "target {target}: next offset {next} does not advance")
            }
            WireError::RecordTruncated(at) => write!(f, "record at {at} truncated"),
            WireError::NameNotTerminated(at) => write!(f, "record at {at}: name not terminated"),
            WireError::NextRecordPastEnd { at, len } => write!(f, "next record at {at} is past the {len}-byte reply"),
        }
    }
}

fn check_name(n: &str) -> Result<(), WireError> {
    if n.is_empty() || n.len() >= DM_NAME_LEN || n.contains(['/', '\0']) || n == "." || n == ".." {
        Err(WireError::BadName(n.to_string()))
    } else {
        Ok(())
    }
}

/// Serialises targets for DM_TABLE_LOAD: spec, params, NUL, padding to 8; `next`
/// is the distance from this spec to the following one.
fn encode_targets(targets: &[TargetLine]) -> Result<Vec<u8>, WireError> {
    let mut out = Vec::new();
    for t in targets {
        if t.target.is_empty() || t.target.len() >= DM_MAX_TYPE_NAME {
            return Err(WireError::BadTargetType(t.target.clone()));
        }
        if t.params.contains('\0') {
            return Err(WireError::ParamsNul);
        }
        let mut params = t.params.as_bytes().to_vec();
        params.push(0);
        let mut target_type = [0u8; DM_MAX_TYPE_NAME];
        target_type[..t.target.len()].copy_from_slice(t.target.as_bytes());
        let next = (SPEC_SIZE + params.len()).next_multiple_of(8);
        let spec = DmTargetSpec {
            sector_start: t.start,
            length: t.length,
            status: 0,
            next: u32::try_from(next).map_err(|_| WireError::ParamsTooLong)?,
            target_type,
        };
        push_struct(&mut out, &spec);
        out.extend_from_slice(&params);
        pad8(&mut out);
    }
    Ok(out)
}

fn read_u32(d: &[u8], at: usize) -> Option<u32> {
    d.get(at..at + 4).map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
}

fn read_u64(d: &[u8], at: usize) -> Option<u64> {
    d.get(at..at + 8).map(|b| {
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        u64::from_ne_bytes(a)
    })
}

/// Parses DM_TABLE_STATUS output: `count` specs; each `next` is relative to the
/// first spec; params follow each spec NUL-terminated.
fn parse_target_specs(data: &[u8], count: u32) -> Result<Vec<TargetLine>, WireError> {
    let mut lines = Vec::new();
    let mut at = 0usize;
    for i in 0..count {
        let spec = data.get(at..at + SPEC_SIZE).ok_or(WireError::SpecPastEnd {
            target: i,
            at,
            len: data.len(),
        })?;
        let start = read_u64(spec, 0).unwrap_or(0);
        let length = read_u64(spec, 8).unwrap_or(0);
        let next = read_u32(spec, 20).unwrap_or(0) as usize;
        let target = c_text(&spec[24..24 + DM_MAX_TYPE_NAME]);
        let params = c_text(&data[at + SPEC_SIZE..]);
        lines.push(TargetLine {
            start,
            length,
            target,
            params,
        });
        if i + 1 < count {
            if next <= at {
                return Err(WireError::NextNotAdvancing { target: i, next });
            }
            at = next;
        }
    }
    Ok(lines)
}

/// The fixed part of a `dm_name_list` record at byte `at`, if it fits.
fn read_name_list_head(d: &[u8], at: usize) -> Option<DmNameList> {
    let bytes = d.get(at..at.checked_add(size_of::<DmNameList>())?)?;
    // SAFETY: `bytes` holds size_of::<DmNameList>() bytes; the struct is integers only,
    // so any bit pattern is valid; read_unaligned copes with the Vec<u8> alignment.
    Some(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<DmNameList>()) })
}

/// Parses DM_LIST_DEVICES output (`dm_name_list` records linked by `next`).
fn parse_name_list(data: &[u8], with_event_nr: bool) -> Result<Vec<DmDevice>, WireError> {
    let mut out = Vec::new();
    if data.len() < 8 || read_u64(data, 0) == Some(0) {
        return Ok(out); // dev 0 marks an empty list
    }
    let mut at = 0usize;
    loop {
        let head = read_name_list_head(data, at).ok_or(WireError::RecordTruncated(at))?;
        let (dev, next) = (head.dev, head.next as usize);
        let end = if next == 0 {
            data.len()
        } else {
            (at + next).min(data.len())
        };
        let name_start = at + NAME_LIST_NAME_OFFSET;
        let rec = data.get(name_start..end).ok_or(WireError::RecordTruncated(at))?;
        let name_len = rec
            .iter()
            .position(|&b| b == 0)
            .ok_or(WireError::NameNotTerminated(at))?;
        let name = String::from_utf8_lossy(&rec[..name_len]).into_owned();
        // event_nr follows the name's NUL, aligned to 8 from the record start.
        let ev_at = (name_start + name_len + 1).next_multiple_of(8);
        let event_nr = if with_event_nr && ev_at + 4 <= end {
            read_u32(data, ev_at)
        } else {
            None
        };
        let (major, minor) = decode_dev(dev);
        out.push(DmDevice {
            name,
            major,
            minor,
            event_nr,
        });
        if next == 0 {
            return Ok(out);
        }
        at += next;
        if at >= data.len() {
            return Err(WireError::NextRecordPastEnd { at, len: data.len() });
        }
    }
}

impl DmBackend for DmIoctl {
    fn version(&self) -> Result<[u32; 3], DmError> {
        Ok(self.run(Cmd::Version, None, 0, &[])?.header.version)
    }

    fn list(&self) -> Result<Vec<DmDevice>, DmError> {
        let reply = self.run(Cmd::ListDevices, None, 0, &[])?;
        let with_ev = reply.header.version[0] == 4 && reply.header.version[1] >= EVENT_NR_MINOR;
        parse_name_list(&reply.data, with_ev).map_err(|why| DmError::BadReply {
            op: Cmd::ListDevices.name(),
            name: None,
            why: why.to_string(),
        })
    }

    fn create(&self, name: &str, uuid: &str, udev: UdevFlags) -> Result<DmInfo, DmError> {
        // The kernel sends no uevent for a create; libdevmapper passes the flags, no cookie.
        let mut h = Self::header_for(Cmd::DevCreate, Some(name), Some(uuid), 0)?;
        h.event_nr = event_nr(0, udev);
        let r = self.send(Cmd::DevCreate, Some(name), h, &[])?;
        Ok(self.info_from(&r.header))
    }

    fn load(&self, name: &str, targets: &[TargetLine]) -> Result<DmInfo, DmError> {
        let payload = encode_targets(targets).map_err(|why| DmError::Invalid {
            op: Cmd::TableLoad.name(),
            name: Some(name.to_owned()),
            why: why.to_string(),
        })?;
        let count = targets.len() as u32;
        let mut h = Self::header_for(Cmd::TableLoad, Some(name), None, 0)?;
        h.target_count = count;
        let r = self.send(Cmd::TableLoad, Some(name), h, &payload)?;
        Ok(self.info_from(&r.header))
    }

    fn suspend(&self, name: &str, how: Suspend) -> Result<DmInfo, DmError> {
        let flags = suspend_flags(true, how);
        Ok(self.info_from(&self.run(Cmd::DevSuspend, Some(name), flags, &[])?.header))
    }

    fn resume_started(
        &self,
        name: &str,
        how: Suspend,
        udev: UdevFlags,
    ) -> Result<(DmInfo, Option<PendingUdev>), DmError> {
        let (r, pending) = self.start_with_cookie(Cmd::DevSuspend, name, suspend_flags(false, how), udev, &[])?;
        Ok((self.info_from(&r.header), pending))
    }

    fn remove(&self, name: &str, udev: UdevFlags, deferred: bool) -> Result<(), DmError> {
        let flags = if deferred { DM_DEFERRED_REMOVE } else { 0 };
        self.run_with_cookie(Cmd::DevRemove, name, flags, udev, &[]).map(|_| ())
    }

    fn rename(&self, name: &str, new_name: &str, udev: UdevFlags) -> Result<(), DmError> {
        check_name(new_name).map_err(|why| DmError::Invalid {
            op: Cmd::DevRename.name(),
            name: Some(name.to_owned()),
            why: why.to_string(),
        })?;
        let mut payload = new_name.as_bytes().to_vec();
        payload.push(0);
        self.run_with_cookie(Cmd::DevRename, name, 0, udev, &payload)
            .map(|_| ())
    }

    fn info(&self, name: &str) -> Result<DmInfo, DmError> {
        Ok(self.info_from(&self.run(Cmd::DevStatus, Some(name), 0, &[])?.header))
    }

    fn table(&self, name: &str) -> Result<Vec<TargetLine>, DmError> {
        self.table_or_status(name, DM_STATUS_TABLE_FLAG)
    }

    fn status(&self, name: &str) -> Result<Vec<TargetLine>, DmError> {
        self.table_or_status(name, 0)
    }

    fn message(&self, name: &str, message: &str) -> Result<Option<String>, DmError> {
        if message.is_empty() || message.contains('\0') {
            return Err(DmError::Invalid {
                op: Cmd::TargetMsg.name(),
                name: Some(name.to_owned()),
                why: format!("message {message:?} is empty or contains NUL"),
            });
        }
        let mut payload = Vec::new();
        push_struct(&mut payload, &DmTargetMsg { sector: 0 });
        payload.extend_from_slice(message.as_bytes());
        payload.push(0);
        let r = self.run(Cmd::TargetMsg, Some(name), 0, &payload)?;
        if r.header.flags & DM_DATA_OUT_FLAG != 0 {
            let text = c_text(&r.data);
            Ok(if text.is_empty() { None } else { Some(text) })
        } else {
            Ok(None)
        }
    }

    fn arm_poll(&self) -> Result<(), DmError> {
        self.run(Cmd::DevArmPoll, None, 0, &[]).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::offset_of;

    #[test]
    fn struct_layouts_match_the_uapi() {
        assert_eq!(size_of::<DmIoctlHeader>(), 312);
        assert_eq!(offset_of!(DmIoctlHeader, dev), 40);
        assert_eq!(offset_of!(DmIoctlHeader, name), 48);
        assert_eq!(offset_of!(DmIoctlHeader, uuid), 176);
        assert_eq!(size_of::<DmTargetSpec>(), 40);
        assert_eq!(offset_of!(DmTargetSpec, next), 20);
        assert_eq!(offset_of!(DmTargetSpec, target_type), 24);
        assert_eq!(size_of::<DmTargetMsg>(), 8);
        assert_eq!(size_of::<DmNameList>(), 16);
        assert_eq!(offset_of!(DmNameList, next), 8);
        assert_eq!(NAME_LIST_NAME_OFFSET, offset_of!(DmNameList, next) + 4);
    }

    #[test]
    fn request_numbers_match_the_uapi() {
        let code = |nr: Cmd| nix::request_code_readwrite!(0xfd, nr as u8, size_of::<DmIoctlHeader>()) as u32;
        assert_eq!(code(Cmd::TableLoad), 0xc138fd09);
        assert_eq!(code(Cmd::TargetMsg), 0xc138fd0e);
        assert_eq!(code(Cmd::ListDevices), 0xc138fd02);
        assert_eq!(code(Cmd::DevArmPoll), 0xc138fd10);
        assert_eq!(code(Cmd::Version), 0xc138fd00);
    }

    #[test]
    fn suspend_and_resume_flags_are_the_uapi_bits() {
        // <linux/dm-ioctl.h>: SUSPEND 1<<1, SKIP_LOCKFS 1<<10, NOFLUSH 1<<11
        assert_eq!(
            (DM_SUSPEND_FLAG, DM_SKIP_LOCKFS_FLAG, DM_NOFLUSH_FLAG),
            (0x2, 0x400, 0x800)
        );
        // what libdevmapper sends for upstream's dm_simplecmd_noflush(SUSPEND) and a
        // reload's resume, for dm_simplecmd_flush(SUSPEND) and a resize's resume
        assert_eq!(suspend_flags(true, Suspend::KEEP_IO), 0xc02);
        assert_eq!(suspend_flags(false, Suspend::KEEP_IO), 0xc00);
        assert_eq!(suspend_flags(true, Suspend::FLUSH), 0x402);
        assert_eq!(suspend_flags(false, Suspend::FLUSH), 0x400);
        // dmsetup's plain suspend and resume freeze the filesystem and flush
        assert_eq!(suspend_flags(true, Suspend::default()), 0x2);
        assert_eq!(suspend_flags(false, Suspend::default()), 0);
    }

    fn header(cmd: Cmd) -> DmIoctlHeader {
        DmIoctl::header_for(cmd, Some("mpatha"), None, 0).unwrap()
    }

    /// A fake kernel whose reply needs `need` bytes of data: it records the buffer size
    /// of every call, and fills the last byte of the data when the reply fits.
    fn kernel_needing(need: usize, sizes: &mut Vec<u32>) -> impl FnMut(&mut Buffer) -> nix::Result<()> + '_ {
        move |buf: &mut Buffer| {
            let mut h = buf.header();
            sizes.push(h.data_size);
            if (h.data_size as usize) < HEADER_SIZE + need {
                h.flags |= DM_BUFFER_FULL_FLAG;
            } else {
                h.data_size = (HEADER_SIZE + need) as u32;
                buf.bytes_mut()[HEADER_SIZE + need - 1] = 0x5a;
            }
            buf.set_header(&h);
            Ok(())
        }
    }

    #[test]
    fn buffer_grows_until_the_reply_fits() {
        let need = 100_000usize;
        let mut sizes = Vec::new();
        let status = header(Cmd::TableStatus);
        let r = exchange(
            Cmd::TableStatus,
            Some("mpatha"),
            status,
            &[],
            INITIAL_BUFFER,
            &mut kernel_needing(need, &mut sizes),
        )
        .unwrap();
        assert_eq!(sizes, [2048, 4096, 8192, 16384, 32768, 65536, 131072]);
        assert_eq!(r.data.len(), need);
        assert_eq!(r.data[need - 1], 0x5a);
        assert_eq!(r.buffer, 131072);
    }

    #[test]
    fn a_command_starts_at_the_size_its_largest_reply_needed() {
        let starts = StartSizes::new();
        let mut sizes = Vec::new();
        let status = header(Cmd::TableStatus);
        let send = |cmd: Cmd, need: usize, sizes: &mut Vec<u32>| {
            starts
                .exchange(cmd, Some("mpatha"), status, &[], &mut kernel_needing(need, sizes))
                .unwrap()
        };
        // A map's status: the first, small buffer holds it.
        send(Cmd::TableStatus, 300, &mut sizes);
        assert_eq!(sizes, [2048]);
        // A large map's status goes through the doublings once...
        sizes.clear();
        send(Cmd::TableStatus, 10_000, &mut sizes);
        assert_eq!(sizes, [2048, 4096, 8192, 16384]);
        // ...and from then on starts where it fit, for small replies too.
        sizes.clear();
        send(Cmd::TableStatus, 10_000, &mut sizes);
        send(Cmd::TableStatus, 300, &mut sizes);
        assert_eq!(sizes, [16384, 16384]);
        // Another command keeps its own start.
        sizes.clear();
        send(Cmd::ListDevices, 300, &mut sizes);
        assert_eq!(sizes, [2048]);
    }

    #[test]
    fn exchange_errors() {
        let mut always_full = |buf: &mut Buffer| {
            let mut h = buf.header();
            h.flags |= DM_BUFFER_FULL_FLAG;
            buf.set_header(&h);
            Ok(())
        };
        let list = header(Cmd::ListDevices);
        let e = exchange(Cmd::ListDevices, None, list, &[], INITIAL_BUFFER, &mut always_full)
            .err()
            .unwrap();
        assert_eq!(
            e.to_string(),
            "DM_LIST_DEVICES: unexpected kernel reply: reply larger than 67108864 bytes"
        );
        let mut enxio = |_: &mut Buffer| Err(Errno::ENXIO);
        let e = exchange(
            Cmd::DevStatus,
            Some("mpatha"),
            header(Cmd::DevStatus),
            &[],
            INITIAL_BUFFER,
            &mut enxio,
        )
        .err()
        .unwrap();
        assert_eq!(e.to_string(), "DM_DEV_STATUS mpatha: No such device or address");
        let mut overlong = |buf: &mut Buffer| {
            let mut h = buf.header();
            h.data_size = 1 << 30;
            buf.set_header(&h);
            Ok(())
        };
        let e = exchange(
            Cmd::DevStatus,
            Some("m"),
            header(Cmd::DevStatus),
            &[],
            INITIAL_BUFFER,
            &mut overlong,
        )
        .err()
        .unwrap();
        assert!(e.to_string().contains("outside the 2048-byte buffer"), "{e}");
    }

    #[test]
    fn request_payload_follows_the_header() {
        let mut seen = Vec::new();
        let mut call = |buf: &mut Buffer| {
            let h = buf.header();
            seen.extend_from_slice(&buf.bytes()[HEADER_SIZE..HEADER_SIZE + 8]);
            assert_eq!((h.data_start as usize, h.version), (HEADER_SIZE, CLIENT_VERSION));
            assert_eq!(c_text(&h.name), "mpatha");
            Ok(())
        };
        exchange(
            Cmd::TargetMsg,
            Some("mpatha"),
            header(Cmd::TargetMsg),
            b"payload!",
            INITIAL_BUFFER,
            &mut call,
        )
        .unwrap();
        assert_eq!(seen, b"payload!");
    }

    #[test]
    fn dev_decoding() {
        assert_eq!(decode_dev((254 << 8) | 3), (254, 3));
        assert_eq!(decode_dev((8 << 8) | 16), (8, 16));
        // minor 300 = 0x12c: low byte in bits 0..8, the rest from bit 20.
        assert_eq!(decode_dev((253 << 8) | 0x2c | (0x100 << 12)), (253, 300));
    }

    #[test]
    fn target_encoding_layout() {
        let t = TargetLine {
            start: 0,
            length: 32768,
            target: "multipath".into(),
            params: "0 0 0 0".into(),
        };
        let b = encode_targets(&[t.clone(), t]).unwrap();
        // 40-byte spec + "0 0 0 0\0" (8 bytes) = 48, already aligned.
        assert_eq!(b.len(), 96);
        assert_eq!(read_u64(&b, 8), Some(32768));
        assert_eq!(read_u32(&b, 20), Some(48));
        assert_eq!(&b[24..33], b"multipath");
        assert_eq!(&b[40..48], b"0 0 0 0\0");
        let long = TargetLine {
            start: 0,
            length: 1,
            target: "x".repeat(16),
            params: String::new(),
        };
        let e = encode_targets(&[long]).unwrap_err();
        assert_eq!(e.to_string(), "target type \"xxxxxxxxxxxxxxxx\" must be 1..15 bytes");
    }

    #[test]
    fn status_reply_parsing() {
        // Reply layout: `next` counts from the first spec.
        let mk = |params: &str, next: u32| {
            let mut v = Vec::new();
            let mut tt = [0u8; 16];
            tt[..9].copy_from_slice(b"multipath");
            push_struct(
                &mut v,
                &DmTargetSpec {
                    sector_start: 0,
                    length: 8,
                    status: 0,
                    next,
                    target_type: tt,
                },
            );
            v.extend_from_slice(params.as_bytes());
            v.push(0);
            pad8(&mut v);
            v
        };
        let mut data = mk("2 0 0 0 0 0", 56);
        data.extend(mk("x", 0));
        let lines = parse_target_specs(&data, 2).unwrap();
        assert_eq!(lines[0].params, "2 0 0 0 0 0");
        assert_eq!(lines[1].params, "x");
        assert_eq!(
            parse_target_specs(&data[..30], 1),
            Err(WireError::SpecPastEnd {
                target: 0,
                at: 0,
                len: 30
            })
        );
        let looped = mk("a", 0);
        assert_eq!(
            parse_target_specs(&[looped.clone(), looped].concat(), 2),
            Err(WireError::NextNotAdvancing { target: 0, next: 0 })
        );
    }

    #[test]
    fn name_list_parsing() {
        let rec = |dev: u64, name: &str, ev: u32, last: bool| {
            let mut v = Vec::new();
            v.extend_from_slice(&dev.to_ne_bytes());
            v.extend_from_slice(&0u32.to_ne_bytes());
            v.extend_from_slice(name.as_bytes());
            v.push(0);
            pad8(&mut v);
            v.extend_from_slice(&ev.to_ne_bytes());
            v.extend_from_slice(&0u32.to_ne_bytes());
            pad8(&mut v);
            if !last {
                let n = v.len() as u32;
                v[8..12].copy_from_slice(&n.to_ne_bytes());
            }
            v
        };
        let data = [
            rec(254 << 8, "mpatha", 7, false),
            rec((254 << 8) | 1, "mpathb", 0, true),
        ]
        .concat();
        let l = parse_name_list(&data, true).unwrap();
        assert_eq!(
            l,
            vec![
                DmDevice {
                    name: "mpatha".into(),
                    major: 254,
                    minor: 0,
                    event_nr: Some(7)
                },
                DmDevice {
                    name: "mpathb".into(),
                    major: 254,
                    minor: 1,
                    event_nr: Some(0)
                },
            ]
        );
        assert_eq!(parse_name_list(&data, false).unwrap()[0].event_nr, None);
        assert_eq!(parse_name_list(&[0u8; 16], true).unwrap(), vec![]);
        let mut broken = rec(1 << 8, "x", 0, false);
        broken[8..12].copy_from_slice(&4096u32.to_ne_bytes());
        assert!(parse_name_list(&broken, true).is_err());
    }

    #[test]
    fn names_are_checked_before_any_ioctl() {
        assert!(check_name("mpatha").is_ok());
        assert!(check_name("").is_err());
        assert!(check_name("a/b").is_err());
        assert!(check_name(&"x".repeat(128)).is_err());
        let e = DmIoctl::header_for(Cmd::DevCreate, Some("m"), Some(&"u".repeat(129)), 0)
            .err()
            .unwrap();
        assert!(
            e.to_string().starts_with("DM_DEV_CREATE m: invalid request: uuid"),
            "{e}"
        );
    }

    #[test]
    fn missing_control_node_is_a_clear_error() {
        let e = DmIoctl::open_path(Path::new("/nonexistent/mapper/control"))
            .err()
            .unwrap();
        assert_eq!(
            e.to_string(),
            "device-mapper not available: /nonexistent/mapper/control: No such file or directory"
        );
        assert_eq!(e.errno(), Some(Errno::ENOENT));
    }
}
