//! udev synchronisation as libdevmapper does it ("cookies"), written for this daemon.
//!
//! A device-mapper ioctl that makes the kernel send a uevent (resume, remove, rename)
//! carries a 32-bit `event_nr`: the low 16 bits are a cookie base, the high 16 bits
//! flags for the udev rules. The kernel hands the value back in the uevent as
//! `DM_COOKIE`; `55-dm.rules` decodes the flags (`dmsetup udevflags`), the subsystem
//! rules act on them (`56-dm-mpath.rules` reads the multipath flags below, `69-lvm.rules`
//! autoactivates only on a primary-source event) and `95-dm-notify.rules` ends with
//! `dmsetup udevcomplete $DM_COOKIE`, which decrements a System V semaphore whose key is
//! the base under [`DM_COOKIE_MAGIC`]. The caller created that semaphore with value 1,
//! added 1 per operation, and after the ioctl takes its own 1 away and waits for zero:
//! then udev has finished with every event of the cookie, `/dev/mapper` links included.
//!
//! The flag and key arithmetic is pure ([`UdevFlags`], [`op_flags`], [`event_nr`],
//! [`cookie_key`]); [`Cookie`] is the semaphore; [`UdevSync`] decides per operation
//! whether to use one: only while udev runs (`/run/udev/control` exists, as libudev's
//! `udev_queue_get_udev_is_active` tests), never with `DM_DISABLE_UDEV` set. Without
//! udev nothing would ever complete a cookie, so the ioctl carries the flags with base
//! 0 and nothing waits, as libdevmapper does. With udev, the wait is bounded
//! ([`DEFAULT_WAIT`]): udev without device-mapper rules never completes a cookie, and
//! the daemon's one state-owner thread must not hang on that (libdevmapper waits for
//! ever); a wait that runs out is logged and the semaphore removed. A wait on a thread
//! of its own may go on while udev still has events queued ([`Patience::WhileUdevBusy`]):
//! at startup with thousands of paths udev's queue runs for minutes, and a cookie not
//! completed then only waits its turn.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// High 16 bits of every cookie semaphore key (libdevmapper's `DM_COOKIE_MAGIC`).
pub const DM_COOKIE_MAGIC: u16 = 0x0D4D;
const FLAGS_SHIFT: u32 = 16;

/// How long an operation waits for udev to complete its cookie.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(10);

/// How long a [`Patience::WhileUdevBusy`] wait may last in all: past the 4,096-path
/// startup's udev queue (about 5 minutes in the lab), short of for ever.
pub const BUSY_WAIT_CAP: Duration = Duration::from_secs(600);

/// How often a wait past its timeout looks whether udev still has events queued.
const BUSY_POLL: Duration = Duration::from_secs(2);

/// The udev flags of a cookie (`DM_UDEV_*` in libdevmapper.h, high half of `event_nr`).
#[derive(Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct UdevFlags(u16);

impl UdevFlags {
    pub const NONE: UdevFlags = UdevFlags(0);
    pub const DISABLE_DM_RULES: UdevFlags = UdevFlags(0x0001);
    pub const DISABLE_SUBSYSTEM_RULES: UdevFlags = UdevFlags(0x0002);
    pub const DISABLE_DISK_RULES: UdevFlags = UdevFlags(0x0004);
    pub const DISABLE_OTHER_RULES: UdevFlags = UdevFlags(0x0008);
    pub const LOW_PRIORITY: UdevFlags = UdevFlags(0x0010);
    /// udev alone makes the nodes and links (no library fallback).
    pub const DISABLE_LIBRARY_FALLBACK: UdevFlags = UdevFlags(0x0020);
    /// The event comes from a real operation, not a trigger or a watch.
    pub const PRIMARY_SOURCE: UdevFlags = UdevFlags(0x0040);
    /// `DM_SUBSYSTEM_UDEV_FLAG0` for multipath: a table reload, nothing for udev to rescan.
    pub const MPATH_RELOAD: UdevFlags = UdevFlags(0x0100);
    /// `DM_SUBSYSTEM_UDEV_FLAG1`: do not run kpartx (`skip_kpartx`).
    pub const MPATH_NO_KPARTX: UdevFlags = UdevFlags(0x0200);
    /// `DM_SUBSYSTEM_UDEV_FLAG2`: the map has no usable path, do not scan it.
    pub const MPATH_NO_PATHS: UdevFlags = UdevFlags(0x0400);

    const NAMES: [(UdevFlags, &'static str); 10] = [
        (Self::DISABLE_DM_RULES, "DISABLE_DM_RULES"),
        (Self::DISABLE_SUBSYSTEM_RULES, "DISABLE_SUBSYSTEM_RULES"),
        (Self::DISABLE_DISK_RULES, "DISABLE_DISK_RULES"),
        (Self::DISABLE_OTHER_RULES, "DISABLE_OTHER_RULES"),
        (Self::LOW_PRIORITY, "LOW_PRIORITY"),
        (Self::DISABLE_LIBRARY_FALLBACK, "DISABLE_LIBRARY_FALLBACK"),
        (Self::PRIMARY_SOURCE, "PRIMARY_SOURCE"),
        (Self::MPATH_RELOAD, "SUBSYSTEM_0"),
        (Self::MPATH_NO_KPARTX, "SUBSYSTEM_1"),
        (Self::MPATH_NO_PATHS, "SUBSYSTEM_2"),
    ];

    pub const fn bits(self) -> u16 {
        self.0
    }

    pub const fn from_bits(bits: u16) -> UdevFlags {
        UdevFlags(bits)
    }

    pub const fn contains(self, other: UdevFlags) -> bool {
        self.0 & other.0 == other.0
    }

    pub const fn with(self, other: UdevFlags) -> UdevFlags {
        UdevFlags(self.0 | other.0)
    }

    pub const fn without(self, other: UdevFlags) -> UdevFlags {
        UdevFlags(self.0 & !other.0)
    }

    const fn with_if(self, cond: bool, other: UdevFlags) -> UdevFlags {
        if cond { self.with(other) } else { self }
    }
}

impl std::ops::BitOr for UdevFlags {
    type Output = UdevFlags;
    fn bitor(self, rhs: UdevFlags) -> UdevFlags {
        self.with(rhs)
    }
}

/// `0x0460 (DISABLE_LIBRARY_FALLBACK|PRIMARY_SOURCE|SUBSYSTEM_2)`, the names libdevmapper's
/// debug log and `dmsetup udevflags` use (`SUBSYSTEM_n` for the subsystem's own flags).
impl fmt::Debug for UdevFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#06x} (", self.0)?;
        let mut rest = self.0;
        let mut first = true;
        for (flag, name) in Self::NAMES {
            if self.contains(flag) {
                f.write_str(if first { "" } else { "|" })?;
                f.write_str(name)?;
                first = false;
                rest &= !flag.0;
            }
        }
        if rest != 0 {
            write!(f, "{}{rest:#06x}", if first { "" } else { "|" })?;
        }
        f.write_str(")")
    }
}

/// What a map operation tells `56-dm-mpath.rules` (upstream's `build_udev_flags`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MapUdev {
    /// `skip_kpartx yes` was selected for the map.
    pub skip_kpartx: bool,
    /// No path of the map is usable (up, ghost or pending), or `ghost_delay` still runs.
    pub no_usable_paths: bool,
    /// A reload that udev must treat as new (upstream's `force_udev_reload`: the
    /// `reload map` command, a resize): no reload flag, so the rules rescan the map.
    pub rescan: bool,
}

/// The device-mapper operations that carry udev flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UdevOp {
    /// Create + load + the resume that makes the map live (upstream's `dm_addmap_create`).
    Create,
    /// The resume that makes a reloaded table live (upstream's `dm_addmap_reload`).
    Reload,
    /// A plain resume (the `resume map` command).
    Resume,
    Rename,
    Remove,
}

/// The flags upstream's daemon gives each operation, before the ioctl layer adds
/// [`UdevFlags::PRIMARY_SOURCE`] (libdevmapper adds it to every resume, remove and rename).
pub fn op_flags(op: UdevOp, m: MapUdev) -> UdevFlags {
    let base = UdevFlags::DISABLE_LIBRARY_FALLBACK;
    match op {
        UdevOp::Create => base
            .with_if(m.skip_kpartx, UdevFlags::MPATH_NO_KPARTX)
            .with_if(m.no_usable_paths, UdevFlags::MPATH_NO_PATHS),
        UdevOp::Reload => base
            .with_if(m.skip_kpartx, UdevFlags::MPATH_NO_KPARTX)
            .with_if(m.no_usable_paths, UdevFlags::MPATH_NO_PATHS)
            .with_if(!m.rescan, UdevFlags::MPATH_RELOAD),
        UdevOp::Resume | UdevOp::Rename => base.with_if(m.skip_kpartx, UdevFlags::MPATH_NO_KPARTX),
        UdevOp::Remove => base,
    }
}

/// The flags as sent when `DM_DISABLE_UDEV` is set: libdevmapper then keeps udev's
/// device-mapper and subsystem rules away and makes the nodes itself (library fallback).
pub fn without_udev_rules(flags: UdevFlags) -> UdevFlags {
    flags
        .without(UdevFlags::DISABLE_LIBRARY_FALLBACK)
        .with(UdevFlags::DISABLE_DM_RULES | UdevFlags::DISABLE_SUBSYSTEM_RULES)
}

/// The ioctl's `event_nr`: cookie base in the low half, flags in the high half.
pub const fn event_nr(base: u16, flags: UdevFlags) -> u32 {
    (flags.0 as u32) << FLAGS_SHIFT | base as u32
}

/// Base and flags of an `event_nr` (or of a uevent's `DM_COOKIE`).
pub const fn decode_event_nr(v: u32) -> (u16, UdevFlags) {
    ((v & 0xffff) as u16, UdevFlags((v >> FLAGS_SHIFT) as u16))
}

/// The System V key of the semaphore for a cookie base.
pub const fn cookie_key(base: u16) -> i32 {
    ((DM_COOKIE_MAGIC as u32) << FLAGS_SHIFT | base as u32) as i32
}

/// The semaphore key `dmsetup udevcomplete` derives from a uevent's `DM_COOKIE`: the
/// flags give way to the magic. `None` for base 0 (no semaphore behind it).
pub const fn key_of_dm_cookie(dm_cookie: u32) -> Option<i32> {
    match decode_event_nr(dm_cookie).0 {
        0 => None,
        base => Some(cookie_key(base)),
    }
}

fn last_err() -> io::Error {
    io::Error::last_os_error()
}

fn semop(semid: i32, op: i16, flags: i16) -> io::Result<()> {
    let mut sb = libc::sembuf {
        sem_num: 0,
        sem_op: op,
        sem_flg: flags,
    };
    // SAFETY: one valid sembuf, count 1.
    if unsafe { libc::semop(semid, &mut sb, 1) } < 0 {
        return Err(last_err());
    }
    Ok(())
}

/// Waits until the semaphore is zero, at most `timeout` (semtimedop; EINTR restarts with
/// the time left).
fn wait_zero(semid: i32, timeout: Duration) -> io::Result<bool> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let ts = libc::timespec {
            tv_sec: left.as_secs() as libc::time_t,
            tv_nsec: left.subsec_nanos() as libc::c_long,
        };
        let mut sb = libc::sembuf {
            sem_num: 0,
            sem_op: 0,
            sem_flg: 0,
        };
        // SAFETY: semtimedop(semid, one sembuf, 1, a valid timespec); glibc has no wrapper
        // in the libc crate, so the raw syscall.
        let r = unsafe {
            libc::syscall(
                libc::SYS_semtimedop,
                semid,
                &mut sb as *mut libc::sembuf,
                1usize,
                &ts as *const libc::timespec,
            )
        };
        if r == 0 {
            return Ok(true);
        }
        let e = last_err();
        match e.raw_os_error() {
            Some(libc::EAGAIN) => return Ok(false),
            Some(libc::EINTR) if !left.is_zero() => continue,
            Some(libc::EINTR) => return Ok(false),
            _ => return Err(e),
        }
    }
}

/// A 16-bit random value from the kernel (getrandom(2)).
fn random_u16() -> io::Result<u16> {
    let mut b = [0u8; 2];
    // SAFETY: writes at most 2 bytes into `b`.
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), 2, 0) };
    if n != 2 {
        return Err(if n < 0 {
            last_err()
        } else {
            io::Error::other("short getrandom")
        });
    }
    Ok(u16::from_ne_bytes(b))
}

/// How long a wait for udev may go on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Patience {
    /// The sync's timeout: for a thread that must not block long (the state owner's).
    Bounded,
    /// Past the timeout while udev has events queued, up to [`BUSY_WAIT_CAP`]: for a
    /// thread that only waits (a new map's `udev-wait`).
    WhileUdevBusy,
}

/// Why a wait for udev ended without its completion.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GaveUp {
    /// udev had no event queued when the timeout ran out: it is not going to complete
    /// the cookie (no device-mapper rules).
    Idle,
    /// udev still had events queued when the wait's patience ran out.
    Busy,
}

/// How a [`PendingUdev::wait`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Waited {
    /// udev completed every event of the cookie.
    Completed,
    GaveUp(GaveUp),
    /// The semaphore could not be waited on (logged).
    Failed,
}

/// The next slice of a wait that has lasted `elapsed` (pure): `Ok(slice)` to wait on,
/// `Err(why)` to give up. Up to `timeout` it waits whatever udev does (the kernel's
/// uevent may not have reached udev's queue yet); after it, `udev_busy` is asked.
pub fn next_wait(
    elapsed: Duration,
    timeout: Duration,
    patience: Patience,
    udev_busy: impl FnOnce() -> bool,
) -> Result<Duration, GaveUp> {
    if elapsed < timeout {
        return Ok(timeout - elapsed);
    }
    let busy = udev_busy();
    match patience {
        _ if !busy => Err(GaveUp::Idle),
        Patience::WhileUdevBusy if elapsed < BUSY_WAIT_CAP => Ok(BUSY_POLL.min(BUSY_WAIT_CAP - elapsed)),
        _ => Err(GaveUp::Busy),
    }
}

/// One cookie's semaphore, removed when dropped (also after a wait that timed out, so
/// none is left behind: a late `udevcomplete` then finds no semaphore and only logs).
#[derive(Debug)]
pub struct Cookie {
    base: u16,
    semid: i32,
}

impl Cookie {
    /// A new semaphore under a random unused base, value 1 (the waiter's own count).
    pub fn create() -> io::Result<Cookie> {
        for _ in 0..1024 {
            let base = random_u16()?;
            if base == 0 {
                continue;
            }
            // SAFETY: plain syscall wrapper.
            let semid = unsafe { libc::semget(cookie_key(base), 1, 0o600 | libc::IPC_CREAT | libc::IPC_EXCL) };
            if semid < 0 {
                let e = last_err();
                if e.raw_os_error() == Some(libc::EEXIST) {
                    continue;
                }
                return Err(e);
            }
            let cookie = Cookie { base, semid };
            // SAFETY: SETVAL takes an int as its fourth (variadic) argument.
            if unsafe { libc::semctl(semid, 0, libc::SETVAL, 1 as libc::c_int) } < 0 {
                return Err(last_err()); // dropped: removed
            }
            return Ok(cookie);
        }
        Err(io::Error::other("no free udev cookie after 1024 tries"))
    }

    pub fn base(&self) -> u16 {
        self.base
    }

    pub fn key(&self) -> i32 {
        cookie_key(self.base)
    }

    /// The semaphore's value.
    pub fn value(&self) -> io::Result<i32> {
        // SAFETY: GETVAL takes no fourth argument.
        let v = unsafe { libc::semctl(self.semid, 0, libc::GETVAL) };
        if v < 0 { Err(last_err()) } else { Ok(v) }
    }

    /// One more event to wait for (before the ioctl).
    pub fn inc(&self) -> io::Result<()> {
        semop(self.semid, 1, 0)
    }

    /// One event fewer: the ioctl failed or the kernel sent no uevent, so udev will not
    /// complete it (libdevmapper's `_udev_complete`).
    pub fn complete(&self) -> io::Result<()> {
        semop(self.semid, -1, libc::IPC_NOWAIT as i16)
    }

    /// Waits until the semaphore is zero (every count taken), at most `timeout`; false
    /// when it was not.
    pub fn wait_zero(&self, timeout: Duration) -> io::Result<bool> {
        wait_zero(self.semid, timeout)
    }
}

impl Drop for Cookie {
    fn drop(&mut self) {
        // SAFETY: IPC_RMID takes no fourth argument.
        if unsafe { libc::semctl(self.semid, 0, libc::IPC_RMID) } < 0 {
            log::warn!(
                "udev cookie {:#x}: cannot remove its semaphore: {}",
                self.key(),
                last_err()
            );
        }
    }
}

/// What `dmsetup udevcomplete DM_COOKIE` (95-dm-notify.rules) does: one decrement of the
/// cookie's semaphore, without waiting.
pub fn udev_complete(dm_cookie: u32) -> io::Result<()> {
    let key = key_of_dm_cookie(dm_cookie).ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: plain syscall wrapper.
    let semid = unsafe { libc::semget(key, 1, 0) };
    if semid < 0 {
        return Err(last_err());
    }
    semop(semid, -1, libc::IPC_NOWAIT as i16)
}

/// Whether an ioctl made the kernel send a uevent (its reply's DM_UEVENT_GENERATED_FLAG).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Uevent {
    Sent,
    NotSent,
}

/// The daemon's udev synchronisation: decides per operation whether a cookie is used.
#[derive(Debug, Clone)]
pub struct UdevSync {
    /// `DM_DISABLE_UDEV` was set: flags as libdevmapper sends them then, no cookie.
    pub disabled: bool,
    /// udev runs while `<run_dir>/control` exists.
    pub run_dir: PathBuf,
    pub timeout: Duration,
}

impl Default for UdevSync {
    fn default() -> Self {
        UdevSync {
            disabled: false,
            run_dir: PathBuf::from("/run/udev"),
            timeout: DEFAULT_WAIT,
        }
    }
}

impl UdevSync {
    /// As libdevmapper: `DM_DISABLE_UDEV` in the environment turns synchronisation off.
    pub fn from_env() -> Self {
        UdevSync {
            disabled: std::env::var_os("DM_DISABLE_UDEV").is_some(),
            ..Default::default()
        }
    }

    fn udev_running(&self) -> bool {
        self.run_dir.join("control").exists()
    }

    /// Runs one uevent-generating ioctl and waits for udev: [`UdevSync::start`], then
    /// [`PendingUdev::wait`].
    pub fn run<T, E: fmt::Display>(
        &self,
        what: &str,
        flags: UdevFlags,
        ioctl: impl FnOnce(u32) -> Result<(T, Uevent), E>,
    ) -> Result<T, E> {
        self.start(what, flags, ioctl).map(waited)
    }

    /// Runs one uevent-generating ioctl: `ioctl` gets the `event_nr` to send and tells
    /// whether the kernel sent a uevent. With udev running, a cookie is made first; when
    /// the kernel sent a uevent, the cookie comes back for the caller to wait on (when it
    /// did not, or the ioctl failed, its count is taken back and there is nothing to wait
    /// for). `flags` must hold everything but PRIMARY_SOURCE.
    pub fn start<T, E: fmt::Display>(
        &self,
        what: &str,
        flags: UdevFlags,
        ioctl: impl FnOnce(u32) -> Result<(T, Uevent), E>,
    ) -> Result<(T, Option<PendingUdev>), E> {
        let flags = flags.with(UdevFlags::PRIMARY_SOURCE);
        if self.disabled {
            return ioctl(event_nr(0, without_udev_rules(flags))).map(|(t, _)| (t, None));
        }
        let cookie = if self.udev_running() {
            match Cookie::create().and_then(|c| c.inc().map(|()| c)) {
                Ok(c) => Some(c),
                Err(e) => {
                    log::warn!("{what}: cannot make a udev cookie ({e}); going on without waiting for udev");
                    None
                }
            }
        } else {
            None
        };
        let Some(cookie) = cookie else {
            return ioctl(event_nr(0, flags)).map(|(t, _)| (t, None));
        };
        let nr = event_nr(cookie.base(), flags);
        log::debug!("{what}: udev cookie {nr:#010x} flags {flags:?}");
        match ioctl(nr) {
            Ok((t, Uevent::Sent)) => Ok((
                t,
                Some(PendingUdev {
                    what: what.to_string(),
                    nr,
                    cookie,
                    timeout: self.timeout,
                    run_dir: self.run_dir.clone(),
                }),
            )),
            // Dropped: the semaphore goes with the count udev will never take.
            Ok((t, Uevent::NotSent)) => Ok((t, None)),
            Err(e) => Err(e),
        }
    }
}

/// The result of a started operation once udev completed its uevent, if it had one:
/// what the waiting forms (`run`, `resume`, `create_map`) return.
pub fn waited<T>((t, pending): (T, Option<PendingUdev>)) -> T {
    if let Some(p) = pending {
        p.wait(Patience::Bounded);
    }
    t
}

/// A uevent the kernel sent for one of our ioctls, whose cookie udev has yet to
/// complete. Waiting is the caller's choice of thread: the owner hands a new map's
/// wait to another one (`daemon::dmport`).
#[must_use = "dropping it removes the cookie without waiting for udev"]
#[derive(Debug)]
pub struct PendingUdev {
    what: String,
    nr: u32,
    cookie: Cookie,
    timeout: Duration,
    /// udev's run directory: `queue` in it exists while udev has events queued (what
    /// libudev's `udev_queue_get_queue_is_empty` tests).
    run_dir: PathBuf,
}

impl PendingUdev {
    /// Takes the waiter's own count away and waits until udev completed the cookie, as
    /// long as `patience` allows; the outcome is logged (the ioctl itself succeeded
    /// either way) and the semaphore removed.
    pub fn wait(self, patience: Patience) -> Waited {
        let PendingUdev {
            what,
            nr,
            cookie,
            timeout,
            run_dir,
        } = self;
        let started = Instant::now();
        let outcome = Self::wait_completed(&cookie, timeout, patience, &run_dir.join("queue"), started);
        let took = started.elapsed().as_secs_f32();
        match outcome {
            Ok(Some(why)) => {
                match why {
                    GaveUp::Idle => log::warn!(
                        "{what}: udev did not complete cookie {nr:#010x} in {took:.0} s and has no event queued \
                         (no device-mapper udev rules?); going on"
                    ),
                    GaveUp::Busy => log::warn!(
                        "{what}: udev did not complete cookie {nr:#010x} in {took:.0} s, its event queue still \
                         busy; going on"
                    ),
                }
                Waited::GaveUp(why)
            }
            Ok(None) => {
                log::debug!("{what}: udev completed cookie {nr:#010x} in {took:.1} s");
                Waited::Completed
            }
            Err(e) => {
                log::warn!("{what}: waiting for udev cookie {nr:#010x}: {e}; going on");
                Waited::Failed
            }
        }
    }

    /// `None` when udev completed the cookie, or why the wait gave up.
    fn wait_completed(
        cookie: &Cookie,
        timeout: Duration,
        patience: Patience,
        queue: &std::path::Path,
        started: Instant,
    ) -> io::Result<Option<GaveUp>> {
        cookie.complete()?;
        loop {
            match next_wait(started.elapsed(), timeout, patience, || queue.exists()) {
                Ok(slice) if cookie.wait_zero(slice)? => return Ok(None),
                Ok(_) => {}
                Err(why) => return Ok(Some(why)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::thread;

    const MP: MapUdev = MapUdev {
        skip_kpartx: false,
        no_usable_paths: false,
        rescan: false,
    };

    #[test]
    fn flag_values_are_libdevmappers() {
        // libdevmapper.h
        assert_eq!(UdevFlags::DISABLE_LIBRARY_FALLBACK.bits(), 0x0020);
        assert_eq!(UdevFlags::PRIMARY_SOURCE.bits(), 0x0040);
        assert_eq!(UdevFlags::DISABLE_DM_RULES.bits(), 0x0001);
        assert_eq!(UdevFlags::DISABLE_SUBSYSTEM_RULES.bits(), 0x0002);
        // multipath-tools devmapper.h: FLAG0 reload, FLAG1 no kpartx, FLAG2 no paths
        assert_eq!(UdevFlags::MPATH_RELOAD.bits(), 0x0100);
        assert_eq!(UdevFlags::MPATH_NO_KPARTX.bits(), 0x0200);
        assert_eq!(UdevFlags::MPATH_NO_PATHS.bits(), 0x0400);
        assert_eq!(DM_COOKIE_MAGIC, 0x0d4d);
    }

    #[test]
    fn flags_per_operation_are_upstreams() {
        let f = UdevFlags::DISABLE_LIBRARY_FALLBACK;
        assert_eq!(op_flags(UdevOp::Create, MP), f);
        assert_eq!(op_flags(UdevOp::Reload, MP), f | UdevFlags::MPATH_RELOAD);
        assert_eq!(op_flags(UdevOp::Resume, MP), f);
        assert_eq!(op_flags(UdevOp::Rename, MP), f);
        assert_eq!(op_flags(UdevOp::Remove, MP), f);
        let all = MapUdev {
            skip_kpartx: true,
            no_usable_paths: true,
            rescan: true,
        };
        let k = UdevFlags::MPATH_NO_KPARTX;
        let np = UdevFlags::MPATH_NO_PATHS;
        assert_eq!(op_flags(UdevOp::Create, all), f | k | np);
        // a rescan drops the reload flag, so the rules treat the table as new
        assert_eq!(op_flags(UdevOp::Reload, all), f | k | np);
        assert_eq!(
            op_flags(UdevOp::Reload, MapUdev { rescan: false, ..all }),
            f | k | np | UdevFlags::MPATH_RELOAD
        );
        // resume and rename know only skip_kpartx; remove nothing of the map
        assert_eq!(op_flags(UdevOp::Resume, all), f | k);
        assert_eq!(op_flags(UdevOp::Rename, all), f | k);
        assert_eq!(op_flags(UdevOp::Remove, all), f);
    }

    #[test]
    fn event_nr_encoding() {
        let flags = UdevFlags::DISABLE_LIBRARY_FALLBACK | UdevFlags::PRIMARY_SOURCE | UdevFlags::MPATH_RELOAD;
        assert_eq!(event_nr(0x1234, flags), 0x0160_1234);
        assert_eq!(decode_event_nr(0x0160_1234), (0x1234, flags));
        assert_eq!(event_nr(0, UdevFlags::NONE), 0);
        assert_eq!(cookie_key(0x1234), 0x0d4d_1234);
        assert_eq!(cookie_key(0xffff), 0x0d4d_ffff);
        // udevcomplete replaces the flags by the magic
        assert_eq!(key_of_dm_cookie(0x0760_beef), Some(0x0d4d_beef));
        assert_eq!(key_of_dm_cookie(0x0760_0000), None);
        // without udev rules: the library would make the nodes
        assert_eq!(
            without_udev_rules(UdevFlags::DISABLE_LIBRARY_FALLBACK | UdevFlags::PRIMARY_SOURCE),
            UdevFlags::PRIMARY_SOURCE | UdevFlags::DISABLE_DM_RULES | UdevFlags::DISABLE_SUBSYSTEM_RULES
        );
    }

    #[test]
    fn flags_print_as_libdevmapper_names_them() {
        let f = UdevFlags::DISABLE_LIBRARY_FALLBACK | UdevFlags::PRIMARY_SOURCE | UdevFlags::MPATH_NO_PATHS;
        assert_eq!(
            format!("{f:?}"),
            "0x0460 (DISABLE_LIBRARY_FALLBACK|PRIMARY_SOURCE|SUBSYSTEM_2)"
        );
        assert_eq!(
            format!("{:?}", UdevFlags::from_bits(0x8001)),
            "0x8001 (DISABLE_DM_RULES|0x8000)"
        );
        assert_eq!(format!("{:?}", UdevFlags::NONE), "0x0000 ()");
    }

    /// What a waiter does with its cookie; the semaphore goes with it.
    fn take_own_count_and_wait(c: Cookie, timeout: Duration) -> bool {
        c.complete().unwrap();
        c.wait_zero(timeout).unwrap()
    }

    /// The semaphore of `key` is gone (nothing leaked).
    fn gone(key: i32) -> bool {
        // SAFETY: plain syscall wrapper.
        let r = unsafe { libc::semget(key, 1, 0) };
        r < 0 && last_err().raw_os_error() == Some(libc::ENOENT)
    }

    #[test]
    fn cookie_lifecycle_completed_by_a_stand_in_for_udevcomplete() {
        let c = Cookie::create().expect("SysV semaphores work here");
        let key = c.key();
        assert_eq!(key as u32 >> 16, DM_COOKIE_MAGIC as u32);
        assert_eq!(c.value().unwrap(), 1);
        c.inc().unwrap();
        c.inc().unwrap();
        assert_eq!(c.value().unwrap(), 3);
        // what the kernel hands udev: flags in the high half, our base in the low one
        let dm_cookie = event_nr(c.base(), UdevFlags::PRIMARY_SOURCE | UdevFlags::MPATH_RELOAD);
        let (tx, rx) = mpsc::channel();
        let waiter = thread::spawn(move || {
            let t = Instant::now();
            let r = take_own_count_and_wait(c, Duration::from_secs(20));
            tx.send(()).unwrap();
            (r, t.elapsed())
        });
        // the waiter must still be waiting after one of two completions
        udev_complete(dm_cookie).unwrap();
        assert!(
            rx.recv_timeout(Duration::from_millis(300)).is_err(),
            "returned before udev completed"
        );
        udev_complete(dm_cookie).unwrap();
        let (completed, took) = waiter.join().unwrap();
        assert!(completed);
        assert!(took < Duration::from_secs(5), "{took:?}");
        assert!(gone(key), "semaphore {key:#x} left behind");
        // a late completion finds nothing (dmsetup only logs then)
        assert_eq!(udev_complete(dm_cookie).unwrap_err().raw_os_error(), Some(libc::ENOENT));
    }

    #[test]
    fn cookie_wait_times_out_when_nobody_completes() {
        let c = Cookie::create().unwrap();
        let key = c.key();
        c.inc().unwrap();
        let t = Instant::now();
        assert!(!take_own_count_and_wait(c, Duration::from_millis(300)));
        let took = t.elapsed();
        assert!(
            took >= Duration::from_millis(300) && took < Duration::from_secs(3),
            "{took:?}"
        );
        assert!(gone(key), "semaphore {key:#x} left behind after a timeout");
    }

    #[test]
    fn cookie_of_an_event_not_sent_is_taken_back() {
        let c = Cookie::create().unwrap();
        let key = c.key();
        c.inc().unwrap();
        c.complete().unwrap(); // the kernel sent no uevent
        let t = Instant::now();
        assert!(take_own_count_and_wait(c, Duration::from_secs(10)));
        assert!(t.elapsed() < Duration::from_secs(1));
        assert!(gone(key));
    }

    #[test]
    fn dropped_cookie_is_removed() {
        let c = Cookie::create().unwrap();
        let key = c.key();
        assert!(!gone(key));
        drop(c);
        assert!(gone(key));
    }

    fn sync_with_udev(dir: &std::path::Path, timeout: Duration) -> UdevSync {
        UdevSync {
            disabled: false,
            run_dir: dir.to_path_buf(),
            timeout,
        }
    }

    #[test]
    fn without_udev_no_cookie_and_no_wait() {
        let dir = tempfile::tempdir().unwrap(); // no `control` in it: udev is not running
        let s = sync_with_udev(dir.path(), Duration::from_secs(30));
        let t = Instant::now();
        let nr = s
            .run::<_, String>("test", UdevFlags::DISABLE_LIBRARY_FALLBACK, |nr| Ok((nr, Uevent::Sent)))
            .unwrap();
        assert_eq!(nr, 0x0060_0000);
        assert!(t.elapsed() < Duration::from_secs(1));
        let off = UdevSync {
            disabled: true,
            ..sync_with_udev(dir.path(), Duration::from_secs(30))
        };
        let nr = off
            .run::<_, String>("test", UdevFlags::DISABLE_LIBRARY_FALLBACK, |nr| Ok((nr, Uevent::Sent)))
            .unwrap();
        assert_eq!(nr, 0x0043_0000);
    }

    #[test]
    fn with_udev_the_ioctl_carries_a_cookie_and_the_wait_ends_on_completion() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("control"), "").unwrap();
        let s = sync_with_udev(dir.path(), Duration::from_secs(20));
        let (tx, rx) = mpsc::channel::<u32>();
        // udev: completes the cookie it is handed, a little later
        let udev = thread::spawn(move || {
            let c = rx.recv().unwrap();
            thread::sleep(Duration::from_millis(200));
            udev_complete(c).unwrap();
        });
        let t = Instant::now();
        let nr = s
            .run::<_, String>("test", UdevFlags::DISABLE_LIBRARY_FALLBACK, |nr| {
                tx.send(nr).unwrap();
                Ok((nr, Uevent::Sent))
            })
            .unwrap();
        udev.join().unwrap();
        let took = t.elapsed();
        assert!(
            took >= Duration::from_millis(200) && took < Duration::from_secs(10),
            "{took:?}"
        );
        let (base, flags) = decode_event_nr(nr);
        assert_ne!(base, 0);
        assert_eq!(flags, UdevFlags::DISABLE_LIBRARY_FALLBACK | UdevFlags::PRIMARY_SOURCE);
        assert!(gone(cookie_key(base)));
    }

    #[test]
    fn with_udev_a_failed_ioctl_or_no_uevent_does_not_wait() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("control"), "").unwrap();
        let s = sync_with_udev(dir.path(), Duration::from_secs(20));
        let t = Instant::now();
        let mut key = 0;
        let e = s
            .run::<(), String>("test", UdevFlags::NONE, |nr| {
                key = cookie_key(decode_event_nr(nr).0);
                Err("ENXIO".into())
            })
            .unwrap_err();
        assert_eq!(e, "ENXIO");
        assert!(gone(key));
        s.run::<_, String>("test", UdevFlags::NONE, |nr| {
            key = cookie_key(decode_event_nr(nr).0);
            Ok(((), Uevent::NotSent))
        })
        .unwrap();
        assert!(gone(key));
        assert!(t.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn with_udev_but_no_rules_the_wait_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("control"), "").unwrap();
        let s = sync_with_udev(dir.path(), Duration::from_millis(400));
        let t = Instant::now();
        let mut key = 0;
        let v = s
            .run::<_, String>("test", UdevFlags::NONE, |nr| {
                key = cookie_key(decode_event_nr(nr).0);
                Ok((7, Uevent::Sent))
            })
            .unwrap();
        assert_eq!(v, 7, "the ioctl's result survives a timed-out wait");
        let took = t.elapsed();
        assert!(
            took >= Duration::from_millis(400) && took < Duration::from_secs(3),
            "{took:?}"
        );
        assert!(gone(key));
    }

    #[test]
    fn started_the_cookie_is_the_callers_to_wait_on_elsewhere() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("control"), "").unwrap();
        let s = sync_with_udev(dir.path(), Duration::from_secs(20));
        let (nr, pending) = s
            .start::<_, String>("test", UdevFlags::NONE, |nr| Ok((nr, Uevent::Sent)))
            .unwrap();
        let key = cookie_key(decode_event_nr(nr).0);
        assert!(!gone(key), "the semaphore stays until udev completed it");
        let pending = pending.expect("a uevent was sent: its cookie comes back");
        let waiter = thread::spawn(move || pending.wait(Patience::Bounded));
        thread::sleep(Duration::from_millis(100));
        assert!(!waiter.is_finished(), "udev has not completed it");
        udev_complete(nr).unwrap();
        assert_eq!(waiter.join().unwrap(), Waited::Completed);
        assert!(gone(key));

        let (_, pending) = s
            .start::<_, String>("test", UdevFlags::NONE, |nr| Ok((nr, Uevent::NotSent)))
            .unwrap();
        assert!(pending.is_none(), "no uevent: nothing to wait for");
    }

    #[test]
    fn past_its_timeout_a_wait_goes_on_only_while_udev_is_busy_and_patient() {
        let t = Duration::from_secs(10);
        let s = Duration::from_secs;
        let never = || -> bool { panic!("udev's queue looked at before the timeout ran out") };
        // before the timeout: the rest of it, whatever udev does
        assert_eq!(next_wait(s(0), t, Patience::Bounded, never), Ok(s(10)));
        assert_eq!(
            next_wait(Duration::from_millis(9_250), t, Patience::WhileUdevBusy, never),
            Ok(Duration::from_millis(750))
        );
        // after it, udev idle: it will not complete the cookie
        assert_eq!(next_wait(s(10), t, Patience::Bounded, || false), Err(GaveUp::Idle));
        assert_eq!(
            next_wait(s(10), t, Patience::WhileUdevBusy, || false),
            Err(GaveUp::Idle)
        );
        assert_eq!(
            next_wait(s(300), t, Patience::WhileUdevBusy, || false),
            Err(GaveUp::Idle)
        );
        // udev busy: the owner's bounded wait ends, the udev-wait thread's looks again later
        assert_eq!(next_wait(s(10), t, Patience::Bounded, || true), Err(GaveUp::Busy));
        assert_eq!(next_wait(s(10), t, Patience::WhileUdevBusy, || true), Ok(BUSY_POLL));
        assert_eq!(next_wait(s(599), t, Patience::WhileUdevBusy, || true), Ok(s(1)));
        assert_eq!(
            next_wait(BUSY_WAIT_CAP, t, Patience::WhileUdevBusy, || true),
            Err(GaveUp::Busy)
        );
    }

    /// A cookie started under a sync whose udev has events queued.
    fn started_with_busy_udev(dir: &std::path::Path, timeout: Duration) -> (u32, PendingUdev) {
        std::fs::write(dir.join("control"), "").unwrap();
        std::fs::write(dir.join("queue"), "").unwrap();
        let s = sync_with_udev(dir, timeout);
        let (nr, pending) = s
            .start::<_, String>("test", UdevFlags::NONE, |nr| Ok((nr, Uevent::Sent)))
            .unwrap();
        (nr, pending.expect("a uevent was sent"))
    }

    /// A new map's wait (200 ms timeout) on a thread, checked still waiting `after` its
    /// start while udev is busy: its cookie, its start, the thread.
    fn still_waiting_after(dir: &std::path::Path, after: Duration) -> (u32, Instant, thread::JoinHandle<Waited>) {
        let (nr, pending) = started_with_busy_udev(dir, Duration::from_millis(200));
        let t = Instant::now();
        let waiter = thread::spawn(move || pending.wait(Patience::WhileUdevBusy));
        thread::sleep(after);
        assert!(!waiter.is_finished(), "gave up while udev was busy");
        (nr, t, waiter)
    }

    #[test]
    fn a_new_maps_wait_outlasts_busy_udev_until_it_completes_the_cookie() {
        let dir = tempfile::tempdir().unwrap();
        let (nr, t, waiter) = still_waiting_after(dir.path(), Duration::from_millis(700));
        udev_complete(nr).unwrap();
        assert_eq!(waiter.join().unwrap(), Waited::Completed);
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
        assert!(gone(cookie_key(decode_event_nr(nr).0)));

        // the owner's own wait does not outlast its timeout, busy or not
        let (nr, pending) = started_with_busy_udev(dir.path(), Duration::from_millis(200));
        let t = Instant::now();
        assert_eq!(pending.wait(Patience::Bounded), Waited::GaveUp(GaveUp::Busy));
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
        assert!(gone(cookie_key(decode_event_nr(nr).0)));
    }

    #[test]
    fn a_new_maps_wait_gives_up_once_udev_has_nothing_queued() {
        let dir = tempfile::tempdir().unwrap();
        let (nr, t, waiter) = still_waiting_after(dir.path(), Duration::from_millis(500));
        // udev's queue ran empty without completing the cookie: no rules for it
        std::fs::remove_file(dir.path().join("queue")).unwrap();
        assert_eq!(waiter.join().unwrap(), Waited::GaveUp(GaveUp::Idle));
        let took = t.elapsed();
        assert!(
            took < Duration::from_millis(500) + BUSY_POLL + Duration::from_secs(2),
            "{took:?}"
        );
        assert!(gone(cookie_key(decode_event_nr(nr).0)));
    }
}
